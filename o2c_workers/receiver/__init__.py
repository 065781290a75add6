"""The webhook receiver (WSGI): Salesforce outbound messages and ERP events.

The package face imports nothing: gunicorn's arbiter loads ``receiver.worker`` before gevent
patches the standard library in each worker, so nothing of ours may come along with it. The
receiver itself is ``receiver.app.Receiver`` (built by ``receiver.app.create_receiver``).
"""
