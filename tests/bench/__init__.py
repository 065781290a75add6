"""Benchmarks (``make bench``): each runs its comparison side by side and reports a ratio."""
