"""Customer sync: a Salesforce account becomes (or stays) one ERP customer."""

from __future__ import annotations

from typing import Any

from o2c_workers import sfid
from o2c_workers.chain import ChainContext
from o2c_workers.errors import InvalidPayload
from o2c_workers.models import ErpCustomer
from o2c_workers.services import reading
from o2c_workers.services.convert import WON, customer_from_account, required
from o2c_workers.services.ports import ErpAdapter, SalesforceApi, StatusWrites, Write
from o2c_workers.services.pricing import Skipped
from o2c_workers.services.shared_reads import ReadGroup, SharedReads


def ensure_customer(ctx: ChainContext, *, sf: SalesforceApi, erp: ErpAdapter,
                    reads: SharedReads | None = None,
                    group: ReadGroup | None = None) -> ChainContext | Skipped:
    """First step of a won opportunity: make sure its account exists in the ERP.

    The opportunity, its account and its lines are read in one query, the account as it is
    now (not the notification's ``AccountId``); with the other won opportunities of its
    outbound message when it came with them (``group``, read through ``reads``). The read
    travels on to the pricing step, without the account (made into the customer; its
    address stays out of the queue). An opportunity no longer Closed Won is ``Skipped``
    before anything is written to the ERP."""
    if reads is None:
        read = reading.read_opportunity(sf, ctx.trace_key)
    else:
        read = reads.read(sf, ctx.trace_key, group)
    stage = str(read.opportunity.get("StageName") or "")
    if stage != WON:
        return Skipped(stage)
    if read.account is None:
        required(read.opportunity, "AccountId")
        raise InvalidPayload(f"the account of {ctx.trace_key} is not visible to the "
                             "integration user")
    customer = erp.ensure_customer(customer_from_account(read.account))
    return ctx.model_copy(update={"account_id": sfid.to18(str(read.account["Id"])),
                                  "customer": customer,
                                  "opportunity": read.model_copy(update={"account": None})})


def sync_account(ctx: dict[str, Any], *, sf: SalesforceApi, out: StatusWrites,
                 erp: ErpAdapter, number_field: str) -> ErpCustomer:
    """An account changed: create its ERP customer or bring it up to date, and write the
    customer number back."""
    account = sf.get_account(ctx["trace_key"])
    data = customer_from_account(account)
    customer = erp.update_customer(erp.ensure_customer(data), data)
    if account.get(number_field) != customer.name:
        out.accept([Write("Account", customer.salesforce_id, {number_field: customer.name},
                          stamp=0, trace_key=ctx["trace_key"],
                          source=f"Customer {customer.name}")])
    return customer
