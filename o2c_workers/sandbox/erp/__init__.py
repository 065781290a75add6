"""A Frappe/ERPNext REST simulator with business rules, faults and an honest record.

``serve_erp(seed, config, port=0)`` runs one on a free port; see ``app.py`` for the routes,
``rules.py`` for what it refuses and ``lifecycle.py`` for invoicing, payment and webhooks.
"""

from o2c_workers.sandbox.erp.app import ErpSimulator
from o2c_workers.sandbox.erp.config import ErpConfig, Faults
from o2c_workers.sandbox.erp.server import RunningErp, serve_erp
from o2c_workers.sandbox.erp.webhooks import SIGNATURE_HEADER, sign

__all__ = ["SIGNATURE_HEADER", "ErpConfig", "ErpSimulator", "Faults", "RunningErp",
           "serve_erp", "sign"]
