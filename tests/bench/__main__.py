"""``python -m tests.bench [NAME ...] [--quick]``: run the benchmarks and print their tables."""

from __future__ import annotations

import argparse
import importlib

BENCHMARKS = {
    "ingest": "tests.bench.ingest",
    "ingest_brokers": "tests.bench.ingest_brokers",
    "dlq": "tests.bench.dlq",
    "limiter": "tests.bench.limiter",
    "delivery": "tests.bench.delivery",
    "waiting": "tests.bench.waiting",
    "erp_calls": "tests.bench.erp_calls",
    "e2e": "tests.bench.e2e",
    "e2e_brokers": "tests.bench.e2e_brokers",
}


def parse(argv: list[str] | None = None) -> tuple[list[str], bool]:
    """The benchmarks to run, in order, and whether to run them short."""
    parser = argparse.ArgumentParser(prog="python -m tests.bench", description=__doc__)
    parser.add_argument("names", nargs="*", metavar="NAME",
                        help=f"benchmarks to run: {', '.join(BENCHMARKS)} (default: all)")
    parser.add_argument("--quick", action="store_true", help="shorter runs, for a smoke test")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.names) - set(BENCHMARKS))
    if unknown:
        parser.error(f"no benchmark named {', '.join(unknown)}; choose from "
                     f"{', '.join(BENCHMARKS)}")
    return args.names or list(BENCHMARKS), args.quick


def main() -> None:
    names, quick = parse()
    for name in names:
        importlib.import_module(BENCHMARKS[name]).main(quick=quick)


if __name__ == "__main__":
    main()
