"""``python -m tests.bench [NAME ...] [--quick]``: run the benchmarks and print their tables."""

from __future__ import annotations

import argparse
import importlib

BENCHMARKS = {
    "ingest": "tests.bench.ingest",
    "dlq": "tests.bench.dlq",
    "limiter": "tests.bench.limiter",
}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.bench", description=__doc__)
    parser.add_argument("names", nargs="*", metavar="NAME",
                        help=f"benchmarks to run: {', '.join(BENCHMARKS)} (default: all)")
    parser.add_argument("--quick", action="store_true", help="shorter runs, for a smoke test")
    args = parser.parse_args()
    unknown = sorted(set(args.names) - set(BENCHMARKS))
    if unknown:
        parser.error(f"no benchmark named {', '.join(unknown)}; choose from "
                     f"{', '.join(BENCHMARKS)}")
    for name in args.names or list(BENCHMARKS):
        importlib.import_module(BENCHMARKS[name]).main(quick=args.quick)


if __name__ == "__main__":
    main()
