"""HiBob (Bob) connector: the employees a Bob service user may read, from HiBob's people search.

Settings: ``base_url`` is Bob's API origin, ``https://api.hibob.com`` (a trailing ``/v1`` is accepted). The
credential is the JSON object ``{"service_user_id": "...", "token": "..."}`` of a Bob service user (sent as HTTP
Basic); the service user needs a permission group that may view the employee fields the tenant maps.

Calls (one OutboundClient per connector, built on first use; paced at HiBob's documented 50 requests a minute
when ``settings.pace`` is on, which covers the metadata call too):
- ``GET /v1/company/people/fields``: every employee field's metadata (id, jsonPath), readable or not;
- ``POST /v1/people/search`` with ``{"fields": [...], "showInactive": true, "humanReadable": "APPEND"}``: every
  employee, inactive ones included, in ONE answer (HiBob has no pagination there). All the metadata's fields are
  asked for, at most 400 a request (HiBob's limit; ``root.id`` in each, answers merged by id), and HiBob leaves
  out, silently, the fields the service user may not read. The search is a read, so it is retried on 502-504 and
  dropped connections like a GET. APPEND rather than REPLACE: HiBob documents an employee-reference's
  human-readable value as a display name, so only the machine value keeps the manager's id; names (department,
  job title, site) come from the ``humanReadable`` values. Field values are read from the slash keys
  (``"/work/title"``) HiBob's read contract documents, else from the nested category objects (``jsonPath``).

Pages: HiBob answers at once, so ``page`` hands the answer out in pages of at most ``page_size`` (500) employees,
in id order (numeric ids numerically), so the engine upserts in bounded batches. The cursor is ``"after:<id>"``,
the id of the last employee handed out: ``page(cursor)`` continues with the ids after it, which stays exact when
people join or leave between two fetches (an offset would shift). A connector keeps the answer in memory for the
pages that follow in the same run (``page(None)`` always fetches afresh: HiBob allows 50 searches a minute); a
NEW connector given a stored cursor fetches the answer again and continues after that id. ``changed_since`` is
ignored (``supports_incremental`` is False): HiBob cannot say what changed, every page set is a full sync. An
employee who left HiBob is simply absent from a full sync; inactive (terminated) ones come with status inactive.

Mapping into Employee: ``root.id`` -> hrms_id; ``root.email``; ``root.firstName`` / ``root.surname``;
``work.title``, ``work.department``, ``work.site`` (human-readable names) -> job_title, department, location;
``work.reportsTo`` (an employee id, or an object with ``id`` / ``email``) -> manager_hrms_id, with manager_email
from the manager's own record in the answer; ``internal.lifecycleStatus`` (hired -> onboarding, employed ->
active, anything with "leave" -> leave, terminated -> inactive), else ``internal.status`` (Inactive -> inactive,
otherwise active); ``work.startDate`` (YYYY-MM-DD) -> start_date. ``attributes`` holds every field the answer
carries for the employee, by HiBob field id (custom fields too, e.g. ``custom.competencies``), valued by its
human-readable value when HiBob gives one, else the machine value (null when the employee has none). A field the
service user may not read is absent: its Employee field is None, and ``attributes()`` does not list it.

``attributes()`` lists the field ids present for at least one employee in the answer (the metadata's fields
minus those HiBob withheld); with no employee at all it cannot tell and lists every field it asked for.

Errors (ConnectorError): 401 (service user ID or token refused) and 403 (no permission) are not retryable and say
what to check; 429 and 5xx after the retries, and connection failures, are retryable; other 4xx, malformed answers
and a cursor that is not this connector's are not. ``RetryLater`` (a Retry-After over a minute) propagates.
HiBob documents no Retry-After on its 429: the client backs off (at least a second) and gives up after
``RETRY.max_attempts``; with pacing on, one connector stays under the limit by itself. No secret appears in any
message or log.
"""

from __future__ import annotations

import base64
import bisect
import json
import logging
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, ClassVar

from shared.hrms.connectors.base import (
    Connector,
    ConnectorError,
    ConnectorSettings,
    Employee,
    Page,
    Result,
    WriteRefused,
)
from shared.http import OutboundClient, OutboundError, RetryLater, RetryPolicy

log = logging.getLogger(__name__)

PAGE_SIZE = 500
MAX_FIELDS = 400  # HiBob's limit on fields[] in one search
CURSOR_PREFIX = "after:"
FIELDS_PATH = "/v1/company/people/fields"
SEARCH_PATH = "/v1/people/search"
# HiBob sends no Retry-After: wait at least a second between attempts (tests swap in a faster policy).
RETRY = RetryPolicy(max_attempts=4, backoff_base=1.0, backoff_minimum=1.0)

ID, EMAIL, FIRST_NAME, SURNAME = "root.id", "root.email", "root.firstName", "root.surname"
TITLE, DEPARTMENT, SITE, REPORTS_TO, START_DATE = (
    "work.title", "work.department", "work.site", "work.reportsTo", "work.startDate")
STATUS, LIFECYCLE_STATUS = "internal.status", "internal.lifecycleStatus"
MAPPED_FIELDS = (ID, EMAIL, FIRST_NAME, SURNAME, TITLE, DEPARTMENT, SITE, REPORTS_TO, START_DATE, STATUS,
                 LIFECYCLE_STATUS)
LIFECYCLE = {"hired": "onboarding", "employed": "active", "active": "active", "terminated": "inactive",
             "inactive": "inactive"}
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")

Record = dict[str, tuple[Any, Any]]  # field id -> (machine value, human-readable value)


@dataclass(frozen=True)
class _Answer:
    """One fetch of every employee: records in id order, their sort keys, and what the answer tells."""

    ids: list[str]
    keys: list[tuple[int, int, str]]
    records: list[Record]
    emails: dict[str, str | None]
    readable: list[str]


def _order(employee_id: str) -> tuple[int, int, str]:
    """Numeric ids in numeric order (Bob's ids are long numbers), anything else after them."""
    return (0, int(employee_id), employee_id) if employee_id.isdigit() else (1, 0, employee_id)


def _text(value: Any) -> str | None:
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return None


def _date(value: Any) -> str | None:
    if not isinstance(value, str) or not _DATE.match(value):
        return None
    try:
        return date.fromisoformat(value[:10]).isoformat()
    except ValueError:
        return None


def _reference(value: Any) -> tuple[str | None, str | None]:
    """An employee reference: an id string, or an object with ``id`` (and ``email``)."""
    if isinstance(value, Mapping):
        return _text(value.get("id")), _text(value.get("email"))
    return _text(value), None


def _status(lifecycle: Any, lifecycle_name: Any, status: Any) -> str:
    for value in (lifecycle, lifecycle_name):
        if isinstance(value, str):
            key = value.strip().lower()
            if key in LIFECYCLE:
                return LIFECYCLE[key]
            if "leave" in key:
                return "leave"
    return "inactive" if isinstance(status, str) and status.strip().lower() == "inactive" else "active"


def _read(document: Any, field_id: str, json_path: str) -> tuple[bool, Any]:
    """A field's value by its slash key, else by its nested path; (False, None) when the answer lacks it."""
    if not isinstance(document, Mapping):
        return False, None
    slash_key = "/" + field_id.replace(".", "/")
    if slash_key in document:
        return True, document[slash_key]
    node: Any = document
    for part in json_path.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return False, None
        node = node[part]
    return True, node


def _chunks(field_ids: list[str]) -> Iterator[list[str]]:
    others = [field_id for field_id in field_ids if field_id != ID]
    step = MAX_FIELDS - 1  # root.id rides in every request, to merge the answers
    for start in range(0, max(len(others), 1), step):
        yield [ID, *others[start:start + step]]


class HiBobConnector:
    kind: ClassVar[str] = "hibob"
    supports_incremental: ClassVar[bool] = False
    requests_per_minute: ClassVar[int] = 50  # documented for POST /v1/people/search

    def __init__(self, settings: ConnectorSettings, *, page_size: int = PAGE_SIZE) -> None:
        if page_size < 1:
            raise ValueError("page_size must be at least 1")
        credential = settings.credential_fields("service_user_id", "token")
        pair = f"{credential['service_user_id']}:{credential['token']}".encode()
        self._authorization = "Basic " + base64.b64encode(pair).decode("ascii")
        base_url = settings.base_url.rstrip("/")
        self._base_url = base_url.removesuffix("/v1")
        self._pace = settings.pace
        self.page_size = page_size
        self._client: OutboundClient | None = None
        self._answer: _Answer | None = None

    # the engine's calls

    def page(self, cursor: str | None, *, changed_since: datetime | None = None) -> Page:
        del changed_since  # HiBob cannot tell what changed: every run is a full one
        after = self._after(cursor)
        if after is None or self._answer is None:
            self._answer = self._fetch()
        answer = self._answer
        start = 0 if after is None else bisect.bisect_right(answer.keys, _order(after))
        end = min(start + self.page_size, len(answer.ids))
        employees = [self._employee(answer.ids[index], answer.records[index], answer)
                     for index in range(start, end)]
        next_cursor = CURSOR_PREFIX + answer.ids[end - 1] if start < end < len(answer.ids) else None
        return Page(employees, next_cursor)

    def attributes(self) -> list[str]:
        if self._answer is None:
            self._answer = self._fetch()
        return list(self._answer.readable)

    def close(self) -> None:
        self._answer = None
        if self._client is not None:
            self._client.close()
            self._client = None

    # fetching

    def _http(self) -> OutboundClient:
        if self._client is None:
            self._client = OutboundClient(
                self.kind, base_url=self._base_url,
                headers={"Authorization": self._authorization, "Accept": "application/json"},
                requests_per_minute=self.requests_per_minute if self._pace else None, retry=RETRY)
        return self._client

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self._http().request(method, path, **kwargs)
        except RetryLater:
            raise
        except OutboundError as error:
            raise ConnectorError(f"HiBob did not answer {method} {path} ({error})",
                                 retryable=error.retryable) from error
        status = response.status_code
        if status == 401:
            raise ConnectorError("HiBob refused the service user (401): check the service user ID and token "
                                 "of the HiBob credential", retryable=False)
        if status == 403:
            raise ConnectorError("HiBob refused access (403): the service user needs a permission group that may "
                                 "view employees' data (Bob: Settings > Integrations > Service users)",
                                 retryable=False)
        if status == 429 or status >= 500:
            raise ConnectorError(f"HiBob answered {method} {path} with {status}", retryable=True)
        if status >= 300:
            raise ConnectorError(f"HiBob refused {method} {path} ({status}): {_detail(response.text)}",
                                 retryable=False)
        try:
            return response.json()
        except ValueError:
            raise ConnectorError(f"HiBob answered {method} {path} with something that is not JSON",
                                 retryable=False) from None

    def _fetch(self) -> _Answer:
        metadata = self._call("GET", FIELDS_PATH)
        if not isinstance(metadata, list):
            raise ConnectorError("HiBob's field metadata is not a list", retryable=False)
        paths = {field_id: field_id.removeprefix("root.") for field_id in MAPPED_FIELDS}
        for item in metadata:
            if isinstance(item, Mapping) and isinstance(item.get("id"), str) and item["id"]:
                json_path = item.get("jsonPath")
                paths[item["id"]] = json_path if isinstance(json_path, str) and json_path else \
                    item["id"].removeprefix("root.")
        requested = list(paths)
        records: dict[str, Record] = {}
        for fields in _chunks(requested):
            answer = self._call("POST", SEARCH_PATH, idempotent=True,
                                json={"fields": fields, "showInactive": True, "humanReadable": "APPEND"})
            employees = answer.get("employees") if isinstance(answer, Mapping) else None
            if not isinstance(employees, list):
                raise ConnectorError("HiBob's search answer has no employees list", retryable=False)
            self._merge(records, employees, fields, paths)
        ids = sorted(records, key=_order)
        ordered = [records[employee_id] for employee_id in ids]
        emails = {employee_id: _text(record.get(EMAIL, (None, None))[0]) for employee_id, record in records.items()}
        present = {field_id for record in ordered for field_id in record}
        readable = [field_id for field_id in requested if field_id in present] if ordered else requested
        return _Answer(ids, [_order(employee_id) for employee_id in ids], ordered, emails, readable)

    @staticmethod
    def _merge(records: dict[str, Record], employees: list[Any], fields: list[str], paths: dict[str, str]) -> None:
        skipped = 0
        for document in employees:
            employee_id = _text(_read(document, ID, paths[ID])[1])
            if employee_id is None:
                skipped += 1
                continue
            record = records.setdefault(employee_id, {})
            human_document = document.get("humanReadable")
            for field_id in fields:
                found, machine = _read(document, field_id, paths[field_id])
                if found:
                    has_human, human = _read(human_document, field_id, paths[field_id])
                    record[field_id] = (machine, human if has_human else machine)
        if skipped:
            log.warning("HiBob: %d employees without an id in the search answer were left out", skipped)

    # mapping

    @staticmethod
    def _after(cursor: str | None) -> str | None:
        if cursor is None:
            return None
        if not isinstance(cursor, str) or not cursor.startswith(CURSOR_PREFIX) or cursor == CURSOR_PREFIX:
            raise ConnectorError("the stored cursor is not a HiBob cursor", retryable=False)
        return cursor.removeprefix(CURSOR_PREFIX)

    @staticmethod
    def _employee(employee_id: str, record: Record, answer: _Answer) -> Employee:
        def machine(field_id: str) -> Any:
            return record.get(field_id, (None, None))[0]

        def human(field_id: str) -> Any:
            return record.get(field_id, (None, None))[1]

        manager_id, manager_email = _reference(machine(REPORTS_TO))
        if manager_id is not None and manager_email is None:
            manager_email = answer.emails.get(manager_id)
        return Employee(
            hrms_id=employee_id,
            email=_text(machine(EMAIL)),
            first_name=_text(human(FIRST_NAME)),
            last_name=_text(human(SURNAME)),
            job_title=_text(human(TITLE)),
            department=_text(human(DEPARTMENT)),
            location=_text(human(SITE)),
            manager_hrms_id=manager_id,
            manager_email=manager_email,
            status=_status(machine(LIFECYCLE_STATUS), human(LIFECYCLE_STATUS), machine(STATUS)),
            start_date=_date(machine(START_DATE)),
            attributes={field_id: machine_value if human_value is None else human_value
                        for field_id, (machine_value, human_value) in record.items()},
        )


def _detail(text: str) -> str:
    """The message of an error body, short (HiBob does not document its error body)."""
    try:
        document = json.loads(text)
    except ValueError:
        document = None
    if isinstance(document, Mapping):
        message = document.get("message") or document.get("error")
        if isinstance(message, str):
            return message[:200]
    return text[:200] or "no detail"


def connect(settings: ConnectorSettings, *, page_size: int = PAGE_SIZE) -> HiBobConnector:
    """A HiBob connector for these settings; it makes no request until used."""
    return HiBobConnector(settings, page_size=page_size)


_: type[Connector] = HiBobConnector  # the class keeps to the Connector protocol


# --- write-back ------------------------------------------------------------------------------------------------

TABLES_METADATA_PATH = "/v1/people/custom-tables/metadata"
RESULT_FIELDS = ("title", "completed_on", "score", "hours", "credits", "marker")


class HiBobWriter:
    """Results written back as entries of a custom table (write-back, shared.hrms.writeback).

    Target: ``{"table_id": "<custom table id>", "columns": {"title": "<column id>", "completed_on": ...,
    "score": ..., "hours": ..., "credits": ..., "marker": "<a text column>"}}``; ``title`` and ``marker``
    are required (the marker column holds ``[ec:<result id>]``, by which a redelivered write finds the
    entry it made). Checked against the custom tables' metadata (``GET /v1/people/custom-tables/metadata``).
    An entry is ``POST /v1/people/custom-tables/{employee id}/{table id}`` ``{"values": {column: value}}``;
    the entries are read back with ``GET`` on the same path (``{"values": [{"id": <number>, column: value}]}``).
    HiBob's reference documents no body for the create's answer: the entry's id is taken from the answer when it
    carries one, otherwise the entry is found again by its marker. A 404 (no such employee or table) and a 400
    (an unknown column, a value the column refuses) are permanent refusals; a 429 is retried, a 5xx or a
    dropped connection is not (a create is not idempotent) and raises a retryable ConnectorError.
    """

    def __init__(self, settings: ConnectorSettings) -> None:
        self._api = HiBobConnector(settings)

    def check_target(self, target: Mapping[str, Any]) -> dict[str, Any]:
        table_id, columns = target.get("table_id"), target.get("columns")
        if not isinstance(table_id, str) or not isinstance(columns, dict) or \
                not {"title", "marker"} <= set(columns) or set(columns) - set(RESULT_FIELDS):
            raise ConnectorError('HiBob write-back needs {"table_id": ..., "columns": {"title": <column id>, '
                                 '"marker": <text column id>, ...}} (fields: ' + ", ".join(RESULT_FIELDS) + ")",
                                 retryable=False)
        metadata = self._api._call("GET", TABLES_METADATA_PATH)
        tables = metadata.get("tables", metadata) if isinstance(metadata, dict) else metadata
        table = next((entry for entry in tables or [] if isinstance(entry, dict) and entry.get("id") == table_id), None)
        if table is None:
            raise ConnectorError(f"HiBob has no custom table {table_id!r}", retryable=False)
        known = {column.get("id") for column in table.get("columns") or [] if isinstance(column, dict)}
        missing = sorted(str(column) for column in columns.values() if column not in known)
        if missing:
            raise ConnectorError(f"HiBob's table {table_id!r} has no column {', '.join(missing)}", retryable=False)
        return {"table_id": table_id, "columns": dict(columns)}

    def _path(self, hrms_id: str, target: Mapping[str, Any]) -> str:
        return f"/v1/people/custom-tables/{hrms_id}/{target['table_id']}"

    def find_written(self, hrms_id: str, result: Result, target: Mapping[str, Any]) -> str | None:
        try:
            entries = self._api._call("GET", self._path(hrms_id, target))
        except ConnectorError as error:
            if "(404)" in str(error):
                raise WriteRefused(f"HiBob has no employee {hrms_id} or no table {target['table_id']}") from None
            raise
        rows = entries.get("values", entries) if isinstance(entries, dict) else entries
        marker_column = target["columns"]["marker"]
        for row in rows or []:
            if isinstance(row, dict) and result.marker in str(row.get(marker_column) or ""):
                return str(row.get("id", ""))
        return None

    def write(self, hrms_id: str, result: Result, target: Mapping[str, Any]) -> str:
        values = {column: (result.marker if field == "marker" else getattr(result, field))
                  for field, column in target["columns"].items()}
        path = self._path(hrms_id, target)
        try:
            response = self._api._http().request("POST", path, json={
                "values": {key: value for key, value in values.items() if value is not None}})
        except RetryLater:
            raise
        except OutboundError as error:
            raise ConnectorError(f"HiBob did not answer POST {path} ({error})", retryable=error.retryable) from error
        status = response.status_code
        if 200 <= status < 300:
            try:
                created = response.json()
            except ValueError:
                created = None  # no body: HiBob documents none for this answer
            entry_id = created.get("id") if isinstance(created, dict) else None
            if entry_id is not None and str(entry_id):
                return str(entry_id)
            return self.find_written(hrms_id, result, target) or ""
        detail = _detail(response.text)
        if status in (400, 404):
            raise WriteRefused(f"HiBob refused the entry of employee {hrms_id} in table {target['table_id']!r} "
                               f"({status}): {detail}")
        if status in (401, 403):
            raise ConnectorError(f"HiBob refused POST {path} ({status}): check the service user's ID and token and "
                                 "that its permission group may edit the custom table", retryable=False)
        raise ConnectorError(f"HiBob answered POST {path} with {status}: {detail}",
                             retryable=status == 429 or status >= 500)

    def close(self) -> None:
        self._api.close()


def writer(settings: ConnectorSettings) -> HiBobWriter:
    return HiBobWriter(settings)
