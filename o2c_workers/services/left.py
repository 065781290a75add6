"""Notes that an opportunity was seen no longer won: how the order step knows, without
reading Salesforce again, that a loss may have overtaken its booking.

An opportunity lost (or re-opened) between its pricing and its order step has its own
outbound message, whose ``follow_opportunity`` reads the stage and finds no order yet. That
step writes the note *before* it looks for orders, and the order step reads the note
*after* it has booked; of any two such runs, one sees the other:

- the order step reads the note before it is written: its order was posted before that,
  so before the follow step looks for orders, which finds and follows it;
- the note is there when the order step reads it: the order step reads the stage itself
  (``lifecycle.book``) and follows it.

A note only ever costs one Salesforce read (an opportunity won again since). It is kept
``O2C_DEDUPE_TTL_H`` (48 h), far longer than it is needed: an order step books on a
pricing at most ``REPRICE_AFTER_S`` (60 s) old, and reads the stage first when older. A note
lost with the last second of Redis writes before a crash (``appendfsync everysec``) can
leave an order live for a lost opportunity; ``o2c reconcile`` reports it
(``order_without_won``, for people, as every order of a lost opportunity it finds).
"""

from __future__ import annotations

import redis

from o2c_workers import keys, sfid


class LeftWon:
    """The notes on the state Redis (``keys.left_won``)."""

    def __init__(self, client: redis.Redis, *, prefix: str, ttl_s: int) -> None:
        self.redis = client
        self.prefix = prefix
        self.ttl_s = ttl_s

    def _key(self, opportunity_id: str) -> str:
        return keys.left_won(self.prefix, sfid.to18(opportunity_id))

    def note(self, opportunity_id: str) -> None:
        """The opportunity was read not won (before its orders are looked for)."""
        self.redis.set(self._key(opportunity_id), "1", ex=self.ttl_s)

    def seen(self, opportunity_id: str) -> bool:
        """Whether it was ever read not won, within the notes' TTL."""
        return bool(self.redis.exists(self._key(opportunity_id)))
