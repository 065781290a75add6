"""Tasks of the pricing domain."""
