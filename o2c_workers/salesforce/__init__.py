"""The Salesforce REST client of the fleet: OAuth, reads, write-back, one error mapping."""

from __future__ import annotations

from o2c_workers.salesforce.auth import Token, TokenSource
from o2c_workers.salesforce.client import SalesforceClient, build_salesforce

__all__ = ["SalesforceClient", "Token", "TokenSource", "build_salesforce"]
