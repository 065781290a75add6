"""``o2c reconcile``: read Salesforce and the ERP, not our records, and say, to the cent,
where they disagree; start the safe repairs on request."""

from __future__ import annotations

from o2c_workers.reconcile.findings import KINDS, Finding, Repair, Report
from o2c_workers.reconcile.run import Reconciler

__all__ = ["KINDS", "Finding", "Reconciler", "Repair", "Report"]
