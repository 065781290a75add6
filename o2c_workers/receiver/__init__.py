"""The webhook receiver (WSGI): Salesforce outbound messages and ERP events."""

from o2c_workers.receiver.app import Receiver, create_receiver

__all__ = ["Receiver", "create_receiver"]
