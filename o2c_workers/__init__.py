"""o2c-workers: the opportunity-to-cash process between Salesforce and an ERP."""

from o2c_workers.celery_app import app

__all__ = ["app"]
