"""Gunicorn settings of the receiver: ``gunicorn -c python:config.gunicorn ...``."""

# No access log by default: the receiver logs every notification with its trace key and
# outcome, and the proxy in front logs requests. Turn it on with ``--access-logfile -``;
# the format shows the path without its query string, because the webhook token travels
# in the query (``?token=``) and must never reach a log.
accesslog = None
access_log_format = '%(h)s %(t)s "%(m)s %(U)s %(H)s" %(s)s %(B)s %(M)sms'
# Gevent: each request spends most of its time waiting on one Redis round trip, and a
# greenlet switch costs far less than gthread's hand-offs between its accepting thread and
# its pool threads (measured in docs/benchmarks.md). Many idle keep-alive connections cost
# nothing. The receiver does no long CPU work that would hold up the other greenlets.
# The worker is gunicorn's gevent_pywsgi worker (gevent's own HTTP server, about a third
# cheaper per request than gunicorn's parser on gevent), with keepalive and max_requests
# honoured, malformed requests logged without their text, and a stop that closes idle
# keep-alive connections at once instead of waiting the graceful timeout for them
# (see o2c_workers/receiver/worker.py).
worker_class = "o2c_workers.receiver.worker.ReceiverWorker"
worker_connections = 1000
keepalive = 30
# Salesforce waits 60 s for an answer; we answer in milliseconds or fail fast with a 503.
timeout = 30
graceful_timeout = 20
