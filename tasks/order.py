"""Tasks of the order domain."""
