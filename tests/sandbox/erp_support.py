"""Shared helpers of the ERP simulator tests: a seed, a client, a server factory."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import pytest
import requests

from o2c_workers.sandbox.erp import RunningErp
from o2c_workers.sandbox.world import ErpSeed, ItemSeed

ACC_OK = "001000000000001AAA"
ACC_LIMITED = "001000000000002AAA"
ACC_FROZEN = "001000000000003AAA"
AUTH = {"Authorization": "token sandbox-key:sandbox-secret"}


def make_seed() -> ErpSeed:
    return ErpSeed(
        items=[ItemSeed("WIDGET", "Widget", {"USD": Decimal("100.00"), "EUR": Decimal("90.00")}),
               ItemSeed("GADGET", "Gadget", {"USD": Decimal("19.99")}),
               ItemSeed("PENNY", "Penny part", {"USD": Decimal("0.50")})],
        tax_rates={"United States": Decimal("5"), "Germany": Decimal("19")},
        credit_limits={ACC_LIMITED: Decimal("500.00")},
        credit_hold={ACC_FROZEN},
    )


class Client:
    """A thin requests wrapper that speaks to one running simulator."""

    def __init__(self, url: str, *, auth: dict[str, str] | None = None) -> None:
        self.url = url
        self.session = requests.Session()
        self.headers = dict(AUTH if auth is None else auth)

    def get(self, path: str, **params: Any) -> requests.Response:
        params = {k: json.dumps(v) if isinstance(v, list | dict) else v
                  for k, v in params.items()}
        return self.session.get(self.url + path, params=params, headers=self.headers,
                                timeout=10)

    def post(self, path: str, body: Any, *, timeout: float = 10) -> requests.Response:
        return self.session.post(self.url + path, json=body, headers=self.headers,
                                 timeout=timeout)

    def put(self, path: str, body: Any) -> requests.Response:
        return self.session.put(self.url + path, json=body, headers=self.headers, timeout=10)

    def sandbox(self, route: str, body: Any = None) -> Any:
        if body is None:
            response = requests.get(f"{self.url}/_sandbox/{route}", timeout=10)
        else:
            response = requests.post(f"{self.url}/_sandbox/{route}", json=body, timeout=10)
        assert response.status_code == 200, response.text
        return response.json()

    def customer(self, name: str, sf_id: str, country: str = "United States") -> dict[str, Any]:
        response = self.post("/api/resource/Customer", {"customer_name": name,
                                                        "salesforce_id": sf_id,
                                                        "country": country})
        assert response.status_code == 200, response.text
        return response.json(parse_float=Decimal)["data"]

    def order(self, customer: str, sf_id: str, *, items: list[dict[str, Any]] | None = None,
              submit: bool = True, **extra: Any) -> requests.Response:
        body = {"customer": customer, "salesforce_id": sf_id,
                "items": items or [{"item_code": "WIDGET", "qty": 1}],
                "docstatus": 1 if submit else 0, **extra}
        return self.post("/api/resource/Sales Order", body)

    def close(self) -> None:
        self.session.close()


def message_of(response: requests.Response) -> str:
    """The first ``_server_messages`` message (a JSON string of a list of JSON strings)."""
    messages = json.loads(response.json()["_server_messages"])
    return str(json.loads(messages[0])["message"])


@pytest.fixture
def start_erp(erp_factory: Callable[..., RunningErp]
              ) -> Iterator[Callable[..., tuple[RunningErp, Client]]]:
    """An ERP simulator on the small seed (``erp_factory``) and a client of it."""
    clients: list[Client] = []

    def start(**config: Any) -> tuple[RunningErp, Client]:
        erp = erp_factory(make_seed(), **config)
        clients.append(Client(erp.url))
        return erp, clients[-1]

    yield start
    for client in clients:
        client.close()


@pytest.fixture
def erp_client(start_erp: Callable[..., tuple[RunningErp, Client]]) -> Client:
    return start_erp()[1]
