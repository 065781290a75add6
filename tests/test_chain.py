"""The chain's typed context: a message written before the schema had a version still reads."""

from __future__ import annotations

import base64
import json
from decimal import Decimal
from pathlib import Path

import pytest

from o2c_workers.chain import SCHEMA, ChainContext
from o2c_workers.errors import InvalidPayload

#: The message submit_order received on the order queue, captured from the fleet before the
#: context was typed (schema 1: no ``schema`` field).
FIXTURE = Path(__file__).parent / "fixtures" / "chain_message_v1.json"


def v1_payload() -> dict:
    envelope = json.loads(FIXTURE.read_text())
    args, _kwargs, _embed = json.loads(base64.b64decode(envelope["body"]))
    return args[0]


def test_a_schema_1_context_reads_with_every_part_typed():
    ctx = ChainContext.load(v1_payload())
    assert ctx.schema_version == 1
    assert ctx.need_customer().name == "Helix Systems S.L."
    assert ctx.need_order().amount == Decimal("137.08")
    assert ctx.pricing is not None and ctx.pricing.expected_grand_total == Decimal("165.87")
    assert ctx.erp_order is None


def test_dump_writes_the_current_schema_and_reads_back_the_same():
    ctx = ChainContext.load(v1_payload())
    dumped = ctx.dump()
    assert dumped["schema"] == SCHEMA
    assert json.loads(json.dumps(dumped)) == dumped  # plain JSON, Decimal as text
    again = ChainContext.load(dumped)
    assert again.model_dump(exclude={"schema_version"}) == ctx.model_dump(
        exclude={"schema_version"})


def test_a_context_that_does_not_validate_is_an_invalid_payload():
    payload = v1_payload()
    payload["order"]["amount"] = "a lot"
    with pytest.raises(InvalidPayload, match=r"order\.amount"):
        ChainContext.load(payload)
    with pytest.raises(InvalidPayload, match="unknown"):
        ChainContext.load({**v1_payload(), "unknown": 1})


def test_a_step_missing_its_input_says_which():
    ctx = ChainContext.load({"trace_key": "0065H0000UC0701QQB"})
    with pytest.raises(InvalidPayload, match="no ERP customer"):
        ctx.need_customer()
