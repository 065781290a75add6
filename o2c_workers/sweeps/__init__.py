"""Catch-up sweeps: what the webhooks missed, found by asking Salesforce.

Every ``O2C_SWEEP_INTERVAL_S`` the beat process sends ``o2c.sweep.run``; the run asks
Salesforce, one SOQL query a page, for Closed Won opportunities without an ERP order
number and accounts changed since each sweep's durable watermark (less
``O2C_SWEEP_OVERLAP_S``), starts their chains through the same guarded write and dedupe
as a notification (``o2c_workers.intake``), and re-drives stalled transactions
(``o2c_workers.stalls``). ``o2c resync --since`` runs the same sweeps from a given time.

Modules: ``specs`` (what each sweep asks), ``sweeper`` (a record sweep, page by page),
``redrive`` (stalled transactions), ``run`` (one run of all, under the fleet's lease),
``state`` (watermarks, figures, the lease), ``results``. The package face imports nothing,
so the receiver's ``/metrics`` reads ``state`` without the Salesforce client.
"""
