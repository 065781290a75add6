"""Tasks of the invoice domain."""
