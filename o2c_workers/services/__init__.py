"""The business steps of the O2C process: plain functions that take their clients."""
