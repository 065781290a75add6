"""The opportunity as the chain needs it, read with one SOQL query: its fields, its
account's (a relationship field, ``Account.Name``) and its product lines (the
``OpportunityLineItems`` subquery), for any number of opportunities at once
(``WHERE Id IN (...)``). The fields are exactly those the conversions read."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from o2c_workers import sfid
from o2c_workers.chain import OpportunityRead
from o2c_workers.errors import InvalidPayload, NotFound
from o2c_workers.salesforce import soql
from o2c_workers.services.ports import SalesforceApi

#: What ``order_from_opportunity`` and the stage check read of the opportunity.
OPPORTUNITY_FIELDS = ("Id", "Name", "StageName", "Amount", "CurrencyIsoCode", "CloseDate",
                      "AccountId")
#: What ``customer_from_account`` reads of its account.
ACCOUNT_FIELDS = ("Id", "Name", "BillingCountry", "CurrencyIsoCode", "AccountNumber",
                  "BillingCity")
#: What ``line_from_item`` reads of each product line.
LINE_FIELDS = ("Id", "ProductCode", "Quantity", "ListPrice", "UnitPrice", "Discount",
               "TotalPrice")
ACCOUNT, LINES = "Account", "OpportunityLineItems"
#: Ids per query: the SOQL text stays far below Salesforce's 100,000 characters.
IDS_PER_QUERY = 200


def query(ids: Sequence[str]) -> str:
    return soql.select("Opportunity",
                       [*OPPORTUNITY_FIELDS, *(f"{ACCOUNT}.{f}" for f in ACCOUNT_FIELDS)],
                       children=[soql.Subquery(LINES, LINE_FIELDS)],
                       where=[soql.ids_in("Id", ids)])


def read_opportunities(sf: SalesforceApi, ids: Sequence[str], *,
                       now: float | None = None) -> dict[str, OpportunityRead]:
    """The opportunities ``ids`` that Salesforce holds, by 18-character id: one call per
    ``IDS_PER_QUERY`` ids (and one per page of more than a couple of hundred lines)."""
    bad = [i for i in ids if not isinstance(i, str) or not sfid.is_valid(i)]
    if bad:
        raise InvalidPayload(f"not a Salesforce record id: {bad[0]!r}", reason="MALFORMED_ID")
    wanted = sorted({sfid.to18(i) for i in ids})
    found: dict[str, OpportunityRead] = {}
    for start in range(0, len(wanted), IDS_PER_QUERY):
        read_at = time.time() if now is None else now
        for record in sf.query_records(query(wanted[start:start + IDS_PER_QUERY]),
                                       children=[LINES]):
            read = _read(record, read_at)
            found[sfid.to18(str(read.opportunity["Id"]))] = read
    return found


def read_opportunity(sf: SalesforceApi, opportunity_id: str) -> OpportunityRead:
    """One opportunity as it is now; ``NotFound`` (as a REST read's 404) when Salesforce
    has none by that id (deleted, or not visible to the integration user)."""
    found = read_opportunities(sf, [opportunity_id]).get(sfid.to18(opportunity_id))
    if found is None:
        raise NotFound(f"Salesforce has no Opportunity {opportunity_id} (deleted, or not "
                       "visible to the integration user)", reason="NOT_FOUND")
    return found


def _read(record: dict[str, Any], read_at: float) -> OpportunityRead:
    account = record.get(ACCOUNT)
    return OpportunityRead(
        opportunity={k: v for k, v in record.items() if k not in ("attributes", ACCOUNT,
                                                                 LINES)},
        account=_plain(account) if isinstance(account, dict) else None,
        lines=[_plain(line) for line in record.get(LINES) or []],
        read_at=read_at)


def _plain(record: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if k != "attributes"}
