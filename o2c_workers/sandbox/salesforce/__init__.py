"""A Salesforce org simulator: REST data API, OAuth, API limits and outbound messaging.

``serve_salesforce(world, config)`` runs it over HTTPS with a generated certificate (its
``ca_file`` is what clients trust); simple-salesforce works against it unchanged.
"""

from __future__ import annotations

from o2c_workers.sandbox.salesforce.config import SalesforceConfig
from o2c_workers.sandbox.salesforce.simulator import (
    SalesforceServer,
    SalesforceSimulator,
    serve_salesforce,
)

__all__ = ["SalesforceConfig", "SalesforceServer", "SalesforceSimulator", "serve_salesforce"]
