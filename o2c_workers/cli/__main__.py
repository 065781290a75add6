"""``python -m o2c_workers.cli``: the ``o2c`` command."""

from o2c_workers.cli import main

main()
