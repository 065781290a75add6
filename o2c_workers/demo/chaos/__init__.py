"""``o2c chaos``: the fleet as users run it, under crashes, restarts and a flaky ERP, judged
only from the simulators' records, Salesforce's fields and the ``o2c`` command."""
