"""The whole Redis key namespace of the project, in one place.

Every key starts with the configured prefix (``O2C_KEY_PREFIX``, default ``o2c``). Celery's
own queue keys (``customer``, ``pricing``, ``order``, ``invoice``, ``payment``, ``_kombu.*``;
``unacked`` and ``unacked_index`` only with ``O2C_RELIABLE_DELIVERY=false``) belong to kombu
and are not listed here. The ``delivery`` keys are written by the reliable transport's Lua
scripts (``o2c_workers.delivery.scripts``), which build them the same way.

Nothing here grows without bound with the traffic: every key expires (TTL), is capped, or is
pruned by the writes that make it grow. The exception, on purpose, is an open dead letter
(and its index entries): it stays until people requeue or purge it, and the dead letters a
later success resolves are closed by the fleet itself. ``tests/test_retention.py`` holds the
writers to this table. Redis must run with ``maxmemory-policy noeviction`` (see the README):
evicting any of these keys would lose a message or a dedupe mark.

==========================================  ======  ========================================
key                                         type    what, and its TTL
==========================================  ======  ========================================
``{p}:dedupe:sf:{notification_id}``         string  a Salesforce Notification Id was taken
                                                    in; TTL ``O2C_DEDUPE_TTL_H`` (48 h)
``{p}:dedupe:erp:{event_id}``               string  an ERP webhook event was taken in;
                                                    TTL ``O2C_DEDUPE_TTL_H``
``{p}:dedupe:record:{trace_key}:{version}:{by}``
                                            string  this version of a Salesforce record
                                                    (its LastModifiedDate, epoch ms) was
                                                    taken in ``by`` a sweep (``swept``) or
                                                    a notification (``notified``): a sweep
                                                    gives way to either, a notification
                                                    only to a sweep (versions are to the
                                                    second); TTL ``O2C_DEDUPE_TTL_H``
``{p}:dedupe:erpdoc:{doctype}:{name}:{version}:{by}``
                                            string  this version of an ERP document (its
                                                    ``modified``, normalized) was taken in
                                                    ``by`` the change feed (``fed``) or a
                                                    webhook event (``notified``): the feed
                                                    gives way to either, an event only to
                                                    the feed; TTL ``O2C_DEDUPE_TTL_H``
``{p}:dedupe:redrive:{trace_key}:{at}``     string  a sweep re-drove the transaction
                                                    stalled since ``at`` (epoch ms);
                                                    TTL ``O2C_DEDUPE_TTL_H``
``{p}:dlq:entry:{id}``                      hash    one dead letter; no TTL while open (or
                                                    requeuing), TTL ``O2C_DLQ_RETENTION_D``
                                                    + 1 day once closed (requeued,
                                                    resolved, purged)
``{p}:dlq:idx:all``                         zset    every entry id by last failure (epoch s);
                                                    every ``dlq:idx`` entry of a closed dead
                                                    letter is pruned with it, past its
                                                    retention, at each resolution by the
                                                    fleet and each listing
``{p}:dlq:idx:status:{status}``             zset    ids by status (open, requeuing,
                                                    requeued, resolved, purged), scored by
                                                    last failure
``{p}:dlq:idx:{status}:category:{cat}``     zset    ids of one status and category, same score
``{p}:dlq:idx:{status}:domain:{domain}``    zset    ids of one status and domain, same score
``{p}:dlq:idx:trace:{trace_key}``           zset    every id of one trace key, same score
``{p}:dlq:idx:expiry``                      zset    closed ids by when they expire (epoch s);
                                                    pruning drops them from every index
``{p}:dlq:facets:category``                 set     every category ever filed (for stats)
``{p}:dlq:facets:domain``                   set     every domain ever filed (for stats)
``{p}:dlq:tmp:{uuid}``                      zset    an intersection for one listing; deleted in
                                                    the same transaction (TTL 60 s as a net)
``{p}:dlq:audit``                           stream  edits, requeues and purges; capped
                                                    at about 100,000 entries
``{p}:timeline:{trace_key}``                list    JSON events of one transaction, its
                                                    newest 1,000 (``TIMELINE_MAX_EVENTS``);
                                                    TTL 30 days from the last event
                                                    (``timeline.TIMELINE_TTL_S``)
``{p}:txn:{trace_key}``                     hash    a transaction's milestones (won, booked,
                                                    invoiced, paid, ...) and counters
                                                    (requeues, retries, waits); same TTL
``{p}:txn:idx:won``                         zset    trace keys by time won (for reports);
                                                    members older than the timeline TTL are
                                                    dropped at each new won opportunity
``{p}:txn:idx:active``                      zset    transactions in flight (received or won,
                                                    not yet written back or synced) by last
                                                    progress: the time of their newest
                                                    timeline event (epoch s). A closing
                                                    milestone or the purge of the last open
                                                    dead letter removes one; members older
                                                    than the timeline TTL are dropped as
                                                    new ones are added
``{p}:worker_lost:{task_id}``               hash    runs of one message that started and
                                                    did not end (``runs``), and the last
                                                    lost worker's exit (``exit``); deleted
                                                    when a run ends; TTL 24 h, renewed at
                                                    each start (``o2c_workers.poison``)
``{p}:limit:{name}:rate:{key}``             zset    a fleet-wide rate window (``name`` is
                                                    ``erp``; ``key`` an endpoint class,
                                                    ``default``): one member per request
                                                    scored by Redis time (ms); TTL the
                                                    window plus its safety margin
``{p}:limit:{name}:slots:{key}``            zset    concurrency leases scored by expiry
                                                    (Redis time, ms); TTL the longest
                                                    lease (the ERP call timeout + grace)
``{p}:limit:{name}:pause``                  string  a fleet-wide pause after a 429 or a
                                                    maintenance 503, its value the reason;
                                                    TTL the ``Retry-After`` (PX, never
                                                    shortened)
``{p}:delivery:consumers``                  zset    every live consumer (one per worker
                                                    channel) by its last heartbeat (Redis
                                                    time, ms); a silent one is reaped
``{p}:delivery:consumer:{id}:queues``       set     the queues consumer ``id`` takes from;
                                                    deleted when it is released or reaped
``{p}:delivery:consumer:{id}:held:{queue}`` list    the messages consumer ``id`` took from
                                                    ``queue`` and has not yet acked; emptied
                                                    back onto ``queue`` when it is reaped
``{p}:delivery:delayed``                    zset    retries waiting for their countdown:
                                                    ``{queue key}\\n{message}`` scored by
                                                    when due (epoch ms); moved when due
``{p}:sweep:watermarks``                    zset    each sweep's durable watermark
                                                    (``opportunities``, ``accounts``,
                                                    ``erp_feed``) by
                                                    epoch s; only ever moved forward
                                                    (``ZADD GT``); no TTL
``{p}:sweep:last:{sweep}``                  hash    the last successful run of a sweep:
                                                    when, its watermark, records seen,
                                                    started, skipped and why, API calls;
                                                    no TTL
``{p}:sweep:lock``                          string  the running sweep's lease (its token);
                                                    TTL ``max(60, 2 x O2C_SWEEP_INTERVAL_S)``
                                                    seconds, renewed on every page
``{p}:sweep:lock:{feed}``                   string  the running ERP change feed's lease
                                                    (``erp_feed``); TTL ``max(60, 2 x
                                                    O2C_ERP_FEED_INTERVAL_S)`` seconds,
                                                    renewed on every page
``{p}:erp:cache:{kind}``                     hash    ERP master data read through the cache
                                                    (``items``, ``prices``, ``tax``,
                                                    ``customers``): one field per item,
                                                    price, country or account; TTL
                                                    ``O2C_ERP_CACHE_TTL_S``
                                                    from the hash's first write
``{p}:erp:cache:{kind}:epoch``              string  how often ``kind`` was invalidated (the
                                                    change feed); a fill that read the ERP
                                                    before an invalidation is not written;
                                                    no TTL: one per kind (four)
``{p}:erp:version:{doctype}:{name}``        string  the newest ``modified`` of an ERP
                                                    document the fleet has seen (an event,
                                                    a read); an event older than it is
                                                    stale and read again; TTL
                                                    ``O2C_DEDUPE_TTL_H``
``{p}:erp:booked:{name}``                   string  a submitted Sales Order's booking facts
                                                    (key, customer, currency, totals, lines:
                                                    fixed once submitted), JSON; TTL
                                                    ``BOOKED_TTL_S`` (14 days)
``{p}:read:{group}:{opportunity_id}``       string  an opportunity's read (JSON), made with
                                                    its outbound message's other won ones in
                                                    one query, for its own first step, which
                                                    takes it (``services.shared_reads``);
                                                    TTL 30 s
``{p}:read:{group}``                        string  the lease of the step reading the group
                                                    (``reading``, then ``done``); TTL 30 s
``{p}:left:{opportunity_id}``               string  the opportunity was read no longer won
                                                    (``services.left``): the order step
                                                    reads the stage again after booking;
                                                    TTL ``O2C_DEDUPE_TTL_H``
``{p}:receiver:replicated``                 string  written by a receiver's enqueue that
                                                    found only duplicates, so its ``WAIT``
                                                    covers the first write (with
                                                    ``O2C_ENQUEUE_MIN_REPLICAS`` only); TTL
                                                    60 s
``{p}:worker:writable``                      string  written by a step on RabbitMQ that met Redis
                                                    refusing, until a write lands again (the
                                                    step then hands its message back); TTL
                                                    60 s
``{p}:beat:{entry}``                        hash    a periodic task of the beat schedule
                                                    (RedBeat's definition and last run)
``{p}:beat::schedule``                      zset    RedBeat's entries by when next due
``{p}:beat::statics``                       set     RedBeat's entries from the app config
``{p}:beat::lock``                          string  the one active beat process's lease;
                                                    TTL ``BEAT_LOCK_TIMEOUT_S`` (30 s),
                                                    renewed on every beat tick
``{p}:sfout:rec:{sobject}:{id}``            hash    one Salesforce record's accepted status
                                                    write-back, not yet sent: each field's
                                                    value (``f:``) and the version of the
                                                    ERP document it came from (``s:``), a
                                                    version counter, the lease holder;
                                                    deleted once sent (or dead-lettered)
                                                    unless written again meanwhile
``{p}:sfout:due``                           zset    records waiting to be sent, by when due
                                                    (Redis time, ms): their first accepted
                                                    write plus ``O2C_SF_FLUSH_S``; a member
                                                    leaves when claimed
``{p}:sfout:leased``                        zset    records a flusher has claimed, by lease
                                                    expiry (ms); back to ``sfout:due`` when
                                                    settled or when the lease runs out
``{p}:sfout:sent:{sobject}:{id}``           hash    the newest version sent per field, so a
                                                    stale write is refused after its newer
                                                    one left; TTL ``writeback.SENT_TTL_S``
                                                    (30 days) from the last send
==========================================  ======  ========================================
"""

from __future__ import annotations


def dedupe_sf(prefix: str, notification_id: str) -> str:
    return f"{prefix}:dedupe:sf:{notification_id}"


def dedupe_erp(prefix: str, event_id: str) -> str:
    return f"{prefix}:dedupe:erp:{event_id}"


#: Who took a record's version in: a sweep or a notification.
SWEPT, NOTIFIED = "swept", "notified"


def dedupe_record(prefix: str, trace_key: str, version: str, by: str) -> str:
    return f"{prefix}:dedupe:record:{trace_key}:{version}:{by}"


#: Who took an ERP document's version in: the change feed (or a webhook, ``NOTIFIED``).
FED = "fed"


def dedupe_erp_version(prefix: str, doctype: str, name: str, version: str, by: str) -> str:
    return f"{prefix}:dedupe:erpdoc:{doctype}:{name}:{version}:{by}"


def dedupe_redrive(prefix: str, trace_key: str, stalled_since_ms: int) -> str:
    return f"{prefix}:dedupe:redrive:{trace_key}:{stalled_since_ms}"


def dlq_entry(prefix: str, entry_id: str) -> str:
    return f"{prefix}:dlq:entry:{entry_id}"


def dlq_index_all(prefix: str) -> str:
    return f"{prefix}:dlq:idx:all"


def dlq_index_status(prefix: str, status: str) -> str:
    return f"{prefix}:dlq:idx:status:{status}"


def dlq_index_category(prefix: str, status: str, category: str) -> str:
    return f"{prefix}:dlq:idx:{status}:category:{category}"


def dlq_index_domain(prefix: str, status: str, domain: str) -> str:
    return f"{prefix}:dlq:idx:{status}:domain:{domain}"


def dlq_index_trace(prefix: str, trace_key: str) -> str:
    return f"{prefix}:dlq:idx:trace:{trace_key}"


def dlq_index_expiry(prefix: str) -> str:
    return f"{prefix}:dlq:idx:expiry"


def dlq_facets(prefix: str, facet: str) -> str:
    """``facet`` is ``category`` or ``domain``."""
    return f"{prefix}:dlq:facets:{facet}"


def dlq_temp(prefix: str, token: str) -> str:
    return f"{prefix}:dlq:tmp:{token}"


def dlq_audit(prefix: str) -> str:
    return f"{prefix}:dlq:audit"


def timeline(prefix: str, trace_key: str) -> str:
    return f"{prefix}:timeline:{trace_key}"


def transaction(prefix: str, trace_key: str) -> str:
    return f"{prefix}:txn:{trace_key}"


def transaction_index_won(prefix: str) -> str:
    return f"{prefix}:txn:idx:won"


def transaction_index_active(prefix: str) -> str:
    return f"{prefix}:txn:idx:active"


def read_entry(prefix: str, group: str, opportunity_id: str) -> str:
    return f"{prefix}:read:{group}:{opportunity_id}"


def read_lease(prefix: str, group: str) -> str:
    return f"{prefix}:read:{group}"


def left_won(prefix: str, opportunity_id: str) -> str:
    return f"{prefix}:left:{opportunity_id}"


def worker_lost(prefix: str, task_id: str) -> str:
    return f"{prefix}:worker_lost:{task_id}"


def limiter(prefix: str, name: str) -> str:
    return f"{prefix}:limit:{name}"


def limiter_rate(prefix: str, name: str, key: str) -> str:
    return f"{limiter(prefix, name)}:rate:{key}"


def limiter_slots(prefix: str, name: str, key: str) -> str:
    return f"{limiter(prefix, name)}:slots:{key}"


def limiter_pause(prefix: str, name: str) -> str:
    return f"{limiter(prefix, name)}:pause"



def delivery_consumers(prefix: str) -> str:
    return f"{prefix}:delivery:consumers"


def delivery_queues(prefix: str, consumer: str) -> str:
    return f"{prefix}:delivery:consumer:{consumer}:queues"


def delivery_held(prefix: str, consumer: str, queue: str) -> str:
    return f"{prefix}:delivery:consumer:{consumer}:held:{queue}"


def delivery_delayed(prefix: str) -> str:
    return f"{prefix}:delivery:delayed"


def sweep_watermarks(prefix: str) -> str:
    return f"{prefix}:sweep:watermarks"


def sweep_last(prefix: str, sweep: str) -> str:
    return f"{prefix}:sweep:last:{sweep}"


def sweep_lock(prefix: str, feed: str | None = None) -> str:
    """The Salesforce sweeps' lease, or (``feed``) an ERP change feed's own."""
    return f"{prefix}:sweep:lock" if feed is None else f"{prefix}:sweep:lock:{feed}"


#: How long a submitted order's booking facts are kept for its invoices and payments, in s.
BOOKED_TTL_S = 14 * 24 * 3600


def erp_cache(prefix: str, kind: str) -> str:
    """One kind of ERP master data read through the cache (``erp.cache``)."""
    return f"{prefix}:erp:cache:{kind}"


def erp_cache_epoch(prefix: str, kind: str) -> str:
    return f"{prefix}:erp:cache:{kind}:epoch"


def erp_version(prefix: str, doctype: str, name: str) -> str:
    """The newest ``modified`` seen of one ERP document (``erp.versions``)."""
    return f"{prefix}:erp:version:{doctype}:{name}"


def erp_booked(prefix: str, name: str) -> str:
    """A submitted Sales Order's booking facts (``erp.versions``)."""
    return f"{prefix}:erp:booked:{name}"


def replication_probe(prefix: str) -> str:
    """What an enqueue that wrote nothing writes before it waits for replicas."""
    return f"{prefix}:receiver:replicated"


def writable_probe(prefix: str) -> str:
    """What a step on RabbitMQ writes to learn that Redis takes writes again."""
    return f"{prefix}:worker:writable"


def beat(prefix: str) -> str:
    """RedBeat's key prefix: its entries are ``{p}:beat:{name}``, its own keys
    ``{p}:beat::schedule``, ``::statics`` and ``::lock``."""
    return f"{prefix}:beat:"


def sfout_record(prefix: str, member: str) -> str:
    """``member`` is ``{sobject}:{id}`` (``sfout_member``)."""
    return f"{prefix}:sfout:rec:{member}"


def sfout_member(sobject: str, record_id: str) -> str:
    return f"{sobject}:{record_id}"


def sfout_due(prefix: str) -> str:
    return f"{prefix}:sfout:due"


def sfout_leased(prefix: str) -> str:
    return f"{prefix}:sfout:leased"


def sfout_sent(prefix: str, member: str) -> str:
    return f"{prefix}:sfout:sent:{member}"
