"""The Salesforce REST client: reads what an outbound message lacks, writes ERP status back.

Built on simple-salesforce over our own ``requests.Session`` (explicit trust, a timeout on
every request, see ``o2c_workers.salesforce.http``). Every failure is mapped once, here, to
the fleet's error tree (``o2c_workers.salesforce.errors``). Numbers in answers arrive as
``Decimal`` (integers stay ``int``); request bodies are encoded without float.

Every write is an idempotent PATCH, so a call whose answer was lost may simply be sent
again: quick retries (tenacity, seconds) cover ``Transient`` faults only; throttling and
the rest go back to the caller, whose Celery retries wait minutes.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from decimal import Decimal
from typing import Any, TypeVar
from urllib.parse import quote

import requests
from simple_salesforce.api import Salesforce
from simple_salesforce.exceptions import SalesforceError, SalesforceExpiredSession
from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt

from config.settings import Settings
from o2c_workers import sfid
from o2c_workers.backoff import RetryPolicy, compute_backoff
from o2c_workers.errors import InvalidPayload, Transient
from o2c_workers.salesforce import errors
from o2c_workers.salesforce.auth import Token, TokenSource
from o2c_workers.salesforce.encoding import dumps
from o2c_workers.salesforce.http import apply_timeout, default_timeout, new_session

log = logging.getLogger("o2c.salesforce")

T = TypeVar("T")
#: In-call retries of transient faults: 3 tries, waits of at most 4 s (with jitter).
QUICK_RETRY = RetryPolicy(max_attempts=3, base_s=0.5, cap_s=4.0)
#: Records one sObject Collections call may carry (Salesforce's limit).
COLLECTION_LIMIT = 200
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,79}$")
_LIMIT_INFO = re.compile(r"api-usage=(\d+)/(\d+)")


def _name(value: str) -> str:
    """An sObject or field API name, checked before it goes into a URL path."""
    if not _NAME.match(value):
        raise ValueError(f"not a Salesforce API name: {value!r}")
    return value


def _record_id(value: str) -> str:
    """A well-formed record id; a bad one fails here without spending an API call."""
    if not isinstance(value, str) or not sfid.is_valid(value):
        raise InvalidPayload(f"not a Salesforce record id: {value!r}", reason="MALFORMED_ID")
    return value


class SalesforceClient:
    """One org's REST API for the fleet; safe to share between threads of a process.

    ``session`` replaces the one built from the settings (which trusts
    ``salesforce_ca_bundle`` and ignores the environment); the client mounts its timeout
    adapter and a response hook on it.
    """

    def __init__(self, settings: Settings, *, session: requests.Session | None = None,
                 retry: RetryPolicy = QUICK_RETRY) -> None:
        self._settings = settings
        self._owns_session = session is None
        self._http = session if session is not None else new_session(settings)
        if session is not None:
            apply_timeout(session, default_timeout(settings))
        self._http.hooks["response"].append(self._note_limits)
        self._tokens = TokenSource(settings, self._http)
        self._retry = retry
        self._api: tuple[Token, Salesforce] | None = None
        self._usage: tuple[int, int] | None = None

    # --- reads ----------------------------------------------------------------------------

    def get_record(self, sobject: str, record_id: str) -> dict[str, Any]:
        path = f"sobjects/{_name(sobject)}/{_record_id(record_id)}"
        return self._dict(self._rest("GET", path, what=f"read {sobject} {record_id}"))

    def get_opportunity(self, opportunity_id: str) -> dict[str, Any]:
        return self.get_record("Opportunity", opportunity_id)

    def get_account(self, account_id: str) -> dict[str, Any]:
        return self.get_record("Account", account_id)

    def get_line_items(self, opportunity_id: str) -> list[dict[str, Any]]:
        """Every line item of an opportunity, following ``nextRecordsUrl`` page by page."""
        what = f"read the line items of Opportunity {opportunity_id}"
        path = f"sobjects/Opportunity/{_record_id(opportunity_id)}/OpportunityLineItems"
        page = self._dict(self._rest("GET", path, what=what))
        records = list(page.get("records") or [])
        while page.get("nextRecordsUrl"):
            page = self._dict(self._next_page(str(page["nextRecordsUrl"]), what=what))
            records.extend(page.get("records") or [])
        return records

    def query_pages(self, soql: str) -> Iterator[dict[str, Any]]:
        """Answer a SOQL query one page at a time: the first call, then one call per
        ``nextRecordsUrl`` (each page is one API call; Salesforce sends up to 2000 records
        a page). A page's ``records`` keep Salesforce's ``attributes``."""
        what = f"query {soql.split(' WHERE ')[0]}"
        page = self._dict(self._call(what, lambda sf: sf.query(soql)))
        yield page
        while page.get("nextRecordsUrl"):
            page = self._dict(self._next_page(str(page["nextRecordsUrl"]), what=what))
            yield page

    def query_records(self, soql: str, *,
                      children: Sequence[str] = ()) -> list[dict[str, Any]]:
        """Every record a query answers, page after page; each child relationship named in
        ``children`` (a subquery's relationship name, ``OpportunityLineItems``) replaced by
        the plain list of all its rows. Salesforce answers null for a subquery that found
        nothing, and pages its rows past a couple of hundred (``done`` false, a
        ``nextRecordsUrl`` of the child result): one more call per page of child rows."""
        what = f"query {soql.split(' WHERE ')[0]}"
        records = [record for page in self.query_pages(soql)
                   for record in page.get("records") or []]
        for record in records:
            for relationship in children:
                record[relationship] = self._child_rows(record.get(relationship), what=what)
        return records

    def _child_rows(self, result: Any, *, what: str) -> list[dict[str, Any]]:
        if result is None:
            return []
        page = self._dict(result)
        rows = list(page.get("records") or [])
        while page.get("done") is False:
            if not page.get("nextRecordsUrl"):
                raise Transient(f"Salesforce answered {what} with child rows not done and no "
                                "nextRecordsUrl", reason="bad_response")
            page = self._dict(self._next_page(str(page["nextRecordsUrl"]), what=what))
            rows.extend(page.get("records") or [])
        return rows

    def _next_page(self, url: str, *, what: str) -> Any:
        if not url.startswith("/services/data/"):
            raise Transient(f"Salesforce answered {what} with an odd nextRecordsUrl",
                            reason="bad_response")
        return self._call(what, lambda sf: sf.query_more(url, identifier_is_url=True))

    # --- writes ---------------------------------------------------------------------------

    def update(self, sobject: str, record_id: str, fields: Mapping[str, Any]) -> None:
        """Set ``fields`` on one record (PATCH, 204)."""
        path = f"sobjects/{_name(sobject)}/{_record_id(record_id)}"
        self._rest("PATCH", path, body=dict(fields), what=f"update {sobject} {record_id}")

    def update_many(self, changes: Iterable[tuple[str, str, Mapping[str, Any]]]) -> None:
        """Update many records with sObject Collections, all or none per call of 200.

        Above 200 records the changes go in several calls; an earlier call stays applied
        when a later one fails (calling again is safe: the writes are idempotent).
        """
        records = [(_name(sobject), _record_id(record_id), dict(fields))
                   for sobject, record_id, fields in changes]
        for start in range(0, len(records), COLLECTION_LIMIT):
            self._update_chunk(records[start:start + COLLECTION_LIMIT])

    def _update_chunk(self, chunk: list[tuple[str, str, dict[str, Any]]]) -> None:
        what = f"update {len(chunk)} record(s) (sObject Collections)"
        body = {"allOrNone": True, "records": [
            {"attributes": {"type": sobject},
             **{k: v for k, v in fields.items() if k.lower() != "id"}, "id": record_id}
            for sobject, record_id, fields in chunk]}
        data, keys = dumps(body), [(sobject, record_id) for sobject, record_id, _ in chunk]

        def send(sf: Salesforce) -> None:
            # Checked inside the call, so a batch rolled back on a lock is sent again.
            results = sf.restful("composite/sobjects", method="PATCH", data=data)
            errors.from_results(keys, results, what=what)

        self._call(what, send)

    def update_each(self, records: Sequence[tuple[str, str, Mapping[str, Any]]]
                    ) -> list[errors.RecordResult]:
        """Update up to 200 records in one sObject Collections call, each on its own
        (``allOrNone`` false): one record's refusal leaves the others applied. Answers one
        result per record, in order; a failure of the whole call raises as any call does.
        Records are sent as given: keep those of one type together (Salesforce processes a
        call in chunks of consecutive records of one type, at most ten chunks)."""
        if not 0 < len(records) <= COLLECTION_LIMIT:
            raise ValueError(f"one call takes 1 to {COLLECTION_LIMIT} records, not {len(records)}")
        checked = [(_name(sobject), _record_id(record_id), dict(fields))
                   for sobject, record_id, fields in records]
        what = f"update {len(checked)} record(s) (sObject Collections)"
        body = {"allOrNone": False, "records": [
            {"attributes": {"type": sobject},
             **{k: v for k, v in fields.items() if k.lower() != "id"}, "id": record_id}
            for sobject, record_id, fields in checked]}
        data = dumps(body)
        answer = self._call(what, lambda sf: sf.restful("composite/sobjects", method="PATCH",
                                                         data=data))
        return errors.record_results(len(checked), answer, what=what)

    def upsert(self, sobject: str, external_field: str, value: str,
               fields: Mapping[str, Any]) -> bool:
        """Create or update the record whose ``external_field`` is ``value``; True if created.

        Salesforce (API 46.0 and later) says ``created`` in the answer; earlier versions
        answer 204 with no body for an update.
        """
        if not value:
            raise InvalidPayload(f"an empty {external_field} cannot identify a record",
                                 reason="MISSING_EXTERNAL_ID")
        path = f"sobjects/{_name(sobject)}/{_name(external_field)}/{quote(value, safe='')}"
        body = {k: v for k, v in fields.items() if k != external_field}
        answer = self._rest("PATCH", path, body=body,
                            what=f"upsert {sobject} by {external_field} {value}")
        return isinstance(answer, dict) and bool(answer.get("created", True))

    # --- limits and lifecycle -------------------------------------------------------------

    def api_usage(self) -> tuple[int, int] | None:
        """(used, allocation) from the last ``Sforce-Limit-Info``; None before any call."""
        return self._usage

    def close(self) -> None:
        if self._owns_session:
            self._http.close()

    def _note_limits(self, response: requests.Response, *args: Any,
                     **kwargs: Any) -> None:
        match = _LIMIT_INFO.search(response.headers.get("Sforce-Limit-Info", ""))
        if match:
            self._usage = (int(match[1]), int(match[2]))

    # --- the one way a call is made -------------------------------------------------------

    def _rest(self, method: str, path: str, *, what: str,
              body: Mapping[str, Any] | None = None) -> Any:
        data = dumps(body) if body is not None else None
        return self._call(what, lambda sf: sf.restful(path, method=method, data=data))

    @staticmethod
    def _dict(answer: Any) -> dict[str, Any]:
        if not isinstance(answer, dict):
            raise Transient("Salesforce answered with something other than a record",
                            reason="bad_response")
        return answer

    def _call(self, what: str, action: Callable[[Salesforce], T]) -> T:
        """Run ``action``, retrying transient faults a few times within seconds."""
        policy = self._retry
        retrying = Retrying(
            stop=stop_after_attempt(policy.max_attempts),
            wait=lambda state: compute_backoff(state.attempt_number, base_s=policy.base_s,
                                               cap_s=policy.cap_s),
            retry=retry_if_exception_type(Transient), reraise=True,
            before_sleep=self._log_retry)
        result: T = retrying(self._authorized, what, action)
        return result

    def _authorized(self, what: str, action: Callable[[Salesforce], T]) -> T:
        """Run ``action`` with the cached token; on 401 fetch a new one and try once more."""
        token = self._tokens.current()
        try:
            return action(self._salesforce(token))
        except SalesforceExpiredSession:
            log.info("salesforce session expired; fetching a new access token")
            self._tokens.invalidate(token)
        except (SalesforceError, requests.RequestException) as exc:
            raise errors.from_exception(exc, what=what) from exc
        try:
            return action(self._salesforce(self._tokens.current()))
        except (SalesforceError, requests.RequestException) as exc:
            raise errors.from_exception(exc, what=what) from exc

    def _salesforce(self, token: Token) -> Salesforce:
        """The simple-salesforce handle for ``token`` (built again when the token changes)."""
        cached = self._api
        if cached is not None and cached[0] is token:
            return cached[1]
        api = Salesforce(instance_url=token.instance_url, session_id=token.access_token,
                         version=self._settings.salesforce_api_version, session=self._http,
                         parse_float=Decimal, object_pairs_hook=dict)
        self._api = (token, api)
        return api

    @staticmethod
    def _log_retry(state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        log.warning("salesforce call failed, retrying: %s", error,
                    extra={"attempt": state.attempt_number,
                           "reason": getattr(error, "reason", None)})


def build_salesforce(settings: Settings) -> SalesforceClient:
    """The client a worker process uses (build it in ``worker_process_init``)."""
    return SalesforceClient(settings)
