"""Fixtures that run the sandbox simulators on free ports (filled in with the sandbox)."""
