"""Tasks of the customer domain."""
