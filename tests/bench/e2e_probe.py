"""What the end-to-end benchmark reads of the sandbox, through its HTTP APIs only.

The simulators' own records say what each side cost: ``/_sandbox/stats`` of Salesforce
(REST calls by method and resource) and of the ERP (calls, refused duplicates, documents
created), and the ERP's ``/_sandbox/calls`` (each call's method and path). Watching for
booked orders costs Salesforce API calls of its own (a record read, or one query for
many); they are counted here and left out of every figure.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from typing import Any
from urllib.parse import quote

import requests

#: Opportunities read one by one (``GET sobjects/Opportunity/{id}``) up to this many;
#: more are read with one query.
SINGLE_READS = 8
TIMEOUT_S = 30.0
SF_FIELDS = "Id,ERP_Order_Number__c,ERP_Order_Status__c,Invoice_Status__c,Payment_Status__c"


class Observer:
    """Drives the org (wins), reads both simulators, and counts its own API calls."""

    def __init__(self, env: dict[str, str]) -> None:
        self.sf_url = env["O2C_SALESFORCE_INSTANCE_URL"]
        self.erp_url = env["O2C_ERP_BASE_URL"]
        self.version = env.get("O2C_SALESFORCE_API_VERSION", "60.0")
        self._sf, self._wins = requests.Session(), requests.Session()
        for http in (self._sf, self._wins):
            http.trust_env = False
            http.verify = env.get("O2C_SALESFORCE_CA_BUNDLE") or True
        self._erp = requests.Session()
        self._erp.trust_env = False
        self._lock = threading.Lock()
        #: The benchmark's own REST calls, by (method, resource) as the simulator counts.
        self.own: Counter[tuple[str, str]] = Counter()
        token = self._sf.post(f"{self.sf_url}/services/oauth2/token", timeout=TIMEOUT_S, data={
            "grant_type": "client_credentials", "client_id": env["O2C_SALESFORCE_CLIENT_ID"],
            "client_secret": env["O2C_SALESFORCE_CLIENT_SECRET"]})
        token.raise_for_status()
        self._bearer = {"Authorization": f"Bearer {token.json()['access_token']}"}

    def close(self) -> None:
        self._sf.close()
        self._wins.close()
        self._erp.close()

    # --- Salesforce -------------------------------------------------------------------

    def _sf_json(self, method: str, path: str, **kwargs: Any) -> Any:
        answer = self._sf.request(method, f"{self.sf_url}{path}", timeout=TIMEOUT_S, **kwargs)
        answer.raise_for_status()
        return answer.json()

    def win(self, ids: list[str]) -> None:
        """Set opportunities Closed Won in one save each: the org sends their messages (a
        session of its own: the paced feed wins from another thread)."""
        answer = self._wins.post(f"{self.sf_url}/_sandbox/opportunities/win", json={"ids": ids},
                                 timeout=TIMEOUT_S)
        answer.raise_for_status()
        won = answer.json()
        if sorted(won["won"]) != sorted(ids):
            raise RuntimeError(f"not won as asked: {won}")

    def set_outbound(self, url: str | None) -> None:
        self._sf_json("POST", "/_sandbox/outbound", json={"url": url})

    def outbound(self) -> dict[str, Any]:
        return dict(self._sf_json("GET", "/_sandbox/stats")["outbound"])

    def sf_calls(self) -> Counter[tuple[str, str]]:
        """REST calls so far by (method, resource), the benchmark's own left out."""
        stats = self._sf_json("GET", "/_sandbox/stats")
        calls = Counter({(c["method"], c["resource"]): int(c["count"])
                         for c in stats["api"]["calls"]})
        with self._lock:
            return calls - self.own

    def written(self, ids: list[str]) -> dict[str, str]:
        """The ERP order number each of ``ids`` carries in Salesforce now (those that do)."""
        if not ids:
            return {}
        if len(ids) <= SINGLE_READS:
            rows = [self._sf_json("GET", f"/services/data/v{self.version}/sobjects/Opportunity/"
                                  f"{i}", params={"fields": "Id,ERP_Order_Number__c"},
                                  headers=self._bearer) for i in ids]
            self._count("GET", "Opportunity", len(ids))
        else:
            listed = ",".join(f"'{i}'" for i in ids)
            soql = (f"SELECT Id, ERP_Order_Number__c FROM Opportunity WHERE "
                    f"ERP_Order_Number__c != null AND Id IN ({listed})")
            rows = self._sf_json("GET", f"/services/data/v{self.version}/query",
                                 params={"q": soql}, headers=self._bearer)["records"]
            self._count("GET", "query", 1)
        return {r["Id"]: r["ERP_Order_Number__c"] for r in rows if r.get("ERP_Order_Number__c")}

    def _count(self, method: str, resource: str, n: int) -> None:
        with self._lock:
            self.own[(method, resource)] += n

    def opportunities(self, ids: list[str]) -> dict[str, dict[str, Any]]:
        """The opportunities as Salesforce holds them (a control read: no API call)."""
        wanted = set(ids)
        rows = self._sf_json("GET", "/_sandbox/records/Opportunity")
        return {r["Id"]: r for r in rows if r["Id"] in wanted}

    # --- ERP --------------------------------------------------------------------------

    def _erp_json(self, method: str, path: str, **kwargs: Any) -> Any:
        answer = self._erp.request(method, f"{self.erp_url}{path}", timeout=TIMEOUT_S,
                                   **kwargs)
        answer.raise_for_status()
        return answer.json()

    def erp_stats(self) -> dict[str, Any]:
        return dict(self._erp_json("GET", "/_sandbox/stats"))

    def erp_calls_after(self, seq: int) -> list[dict[str, Any]]:
        return list(self._erp_json("GET", "/_sandbox/calls",
                                   params={"after_seq": str(seq)})["calls"])

    def orders_of(self, ids: list[str]) -> dict[str, list[dict[str, Any]]]:
        """Every Sales Order whose ``po_no`` names one of the opportunities, by it."""
        found: dict[str, list[dict[str, Any]]] = {i: [] for i in ids}
        for start in range(0, len(ids), 200):
            batch = ",".join(ids[start:start + 200])
            docs = self._erp_json("GET", f"/_sandbox/documents/{quote('Sales Order')}",
                                  params={"po_no": batch})["data"]
            for doc in docs:
                found.setdefault(str(doc["po_no"]), []).append(doc)
        return found

    def invoice(self, order: str) -> None:
        self._erp_json("POST", f"/_sandbox/orders/{quote(order, safe='')}/invoice")

    def webhooks_pending(self) -> int:
        """ERP webhooks not yet delivered (nor given up)."""
        return int(self.erp_stats()["webhooks"].get("pending", 0))

    def documents(self, doctype: str, **where: str) -> list[dict[str, Any]]:
        return list(self._erp_json("GET", f"/_sandbox/documents/{quote(doctype)}",
                                   params=where)["data"])


def erp_breakdown(calls: list[dict[str, Any]]) -> Counter[str]:
    """ERP calls by method and DocType (or method name)."""
    out: Counter[str] = Counter()
    for call in calls:
        what = call.get("doctype") or str(call["path"]).rsplit(".", 1)[-1]
        out[f"{call['method']} {what}"] += 1
    return out


def dumps(counter: Counter[Any]) -> str:
    return json.dumps({" ".join(k) if isinstance(k, tuple) else k: v
                       for k, v in counter.most_common()})
