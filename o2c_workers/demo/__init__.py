"""``o2c demo``: the whole opportunity-to-cash process on the bundled sandbox."""
