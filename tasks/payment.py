"""Tasks of the payment domain."""
