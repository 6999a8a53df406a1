"""The BambooHR connector: employees from ``{base_url}/api/v1/...``, where ``base_url`` is the company's
``https://{companyDomain}.bamboohr.com`` (tests: local/bamboohr.py; tests/hrms/test_bamboohr.py).

Credential (the secret's JSON): ``{"api_key": "<a BambooHR API key>"}``. It is sent as the HTTP Basic user name
(any password: "x"); the key acts with the permissions of the BambooHR user who made it, so that user's access
level decides which fields are readable. There are no access tokens (``base.TOKENS`` is not used).

Requests (all GET, ``Accept: application/json``: some endpoints answer XML without it):

- ``/api/v1/meta/fields`` once per connector: which custom fields (aliases ``custom...``) and whether
  ``supervisorEmail`` exist. Fields without an alias are not read.
- ``/api/v1/employees?sort=employeeId&page[limit]=N[&page[after]=C]&fields=...`` (List Employees) for a full
  sync: the fixed fields (employeeId, firstName, lastName, preferredName, photoUrl, jobTitleName, status) plus
  every optional field the spec enumerates (``LIST_FIELDS``: workEmail, hireDate, departmentName,
  locationName, employmentStatusName, reportsToId, ...), the custom fields and supervisorEmail. The spec
  says List Employees silently ignores names outside its enumeration, custom fields included: when a record
  comes back without a requested custom field or supervisorEmail, the connector reads those with Get Employee
  (``/api/v1/employees/{id}?fields=...``), one request per employee of the page. That is the price of custom
  fields on BambooHR (bounded by the page size, ``PAGE_SIZE`` = 100); a tenant without custom fields pays it
  for supervisorEmail alone, which every account has.
- ``/api/v1/employees/changed?since=<ISO 8601>`` for an incremental sync, then List Employees with
  ``filter[ids][]`` for up to a page of the changed ids (in id order); Deleted ones are skipped (a full sync
  is what notices departures), and so are ids List Employees no longer returns.

Cursor (opaque to the engine, JSON): a full sync ``{"after": <BambooHR's nextCursor>, "last": "<the page's last
employeeId>"}``; an incremental one ``{"since": "<the since the changed list was asked for>", "last": "<last
id done>"}``. Resuming an incremental cursor asks for the same ``since`` again and continues after ``last`` in
id order (so changes made meanwhile cannot shift it; employees changed again are simply included), whatever
``changed_since`` the call passes. BambooHR's cursor names its boundary employee and is refused (400
``BadPage``) once that employee is deleted: the connector then lists again from the start and keeps only ids
after ``last`` (pages that are entirely before it come back empty, with a cursor), which is correct because
the listing is sorted by employeeId.

Mapping: hrms_id = employeeId; email = workEmail; first/last name; job_title = jobTitleName; department =
departmentName; location = locationName; manager_hrms_id = reportsToId; manager_email = supervisorEmail;
start_date = hireDate (BambooHR's "0000-00-00" is no date); status: employmentStatusName "Terminated" ->
inactive, one naming leave -> leave, "Pre-Hire"/onboarding or a hire date in the future -> onboarding,
otherwise status Inactive -> inactive, else active. ``attributes`` holds every field the record carries by its
BambooHR name (values as BambooHR sends them: mostly strings), except the ones the key may not read: those
are null and listed in ``_restrictedFields`` on List Employees, or omitted by Get Employee; the mapped field
is then None. ``attributes()`` lists the same names: what the metadata says exists, less what a probe of the
first employee shows restricted (restrictions are per field for an API key; one field hidden for some
employees only would still be listed).

Errors: 401 (the key is refused) and 403 (its user may not list employees) -> non-retryable ConnectorError
naming what to check; throttling (429 with Retry-After since 2026-09-16, 503 before: both retried by
shared.http honouring Retry-After), 502-504 and broken connections are retried, then a retryable
ConnectorError; a 500 is retryable at once; a Retry-After beyond a minute raises ``RetryLater``. A 403 or 404
from Get Employee for one employee only leaves that employee's extra fields None. Any other answer, or
one that is not the documented JSON -> non-retryable ConnectorError. No message carries the key.

Pacing: BambooHR publishes no numeric limit (it throttles "if BambooHR deems them to be too frequent");
``requests_per_minute`` = 300 is our choice, the throttling answers are the real guard.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime
from typing import Any, ClassVar

import httpx

from shared.hrms.connectors.base import ConnectorError, ConnectorSettings, Employee, Page, Result, WriteRefused
from shared.http import OutboundClient, OutboundError, RetryLater, RetryPolicy

LIST_PATH = "/api/v1/employees"
CHANGED_PATH = "/api/v1/employees/changed"
FIELDS_PATH = "/api/v1/meta/fields"
# What List Employees always returns, and the optional fields its ``fields`` parameter accepts (the spec's enum).
LIST_BASE_FIELDS = ("employeeId", "firstName", "lastName", "preferredName", "photoUrl", "jobTitleName", "status")
LIST_FIELDS = (
    "workEmail", "homeEmail", "bestEmail", "middleName", "workPhone", "workPhoneExtension", "mobilePhone",
    "homePhone", "skypeUsername", "linkedinUrl", "facebookUrl", "instagramUrl", "twitterUrl", "pinterestUrl",
    "birthDate", "hireDate", "divisionName", "divisionId", "departmentName", "departmentId", "locationName",
    "locationId", "jobTitleId", "employmentStatusName", "employmentStatusId", "reportsToName", "reportsToId",
)
SUPERVISOR_EMAIL = "supervisorEmail"
MAX_EXTRA_FIELDS = 390  # Get Employee takes at most 400 fields
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_ONBOARDING_WORDS = ("pre-hire", "prehire", "pre hire", "onboard", "future")


class BambooHRConnector:
    kind: ClassVar[str] = "bamboohr"
    supports_incremental: ClassVar[bool] = True
    requests_per_minute: ClassVar[int] = 300  # not published by BambooHR: our pace (see the module docstring)
    PAGE_SIZE: ClassVar[int] = 100  # List Employees allows 2500; each page may cost a Get Employee per person

    def __init__(self, settings: ConnectorSettings, *, page_size: int = PAGE_SIZE,
                 retry: RetryPolicy | None = None, sleep: Callable[[float], None] | None = None) -> None:
        if not 1 <= page_size <= 2500:
            raise ValueError("page_size is 1..2500 (List Employees' limit)")
        self.settings = settings
        self.page_size = page_size
        self._api_key = settings.credential_fields("api_key")["api_key"]
        self._retry = retry or RetryPolicy()
        self._sleep = sleep
        self._client: OutboundClient | None = None
        self._extra: list[str] | None = None  # custom field aliases (+ supervisorEmail), from meta/fields
        self._changed: dict[str, list[int]] = {}  # since -> changed ids (not deleted), sorted

    # --- HTTP ---

    def _http(self) -> OutboundClient:
        if self._client is None:
            basic = base64.b64encode(f"{self._api_key}:x".encode()).decode()
            extra: dict[str, Any] = {"sleep": self._sleep} if self._sleep is not None else {}
            try:
                self._client = OutboundClient(
                    service=self.kind, base_url=self.settings.base_url.rstrip("/"),
                    headers={"Authorization": f"Basic {basic}", "Accept": "application/json"},
                    requests_per_minute=self.requests_per_minute if self.settings.pace else None,
                    retry=self._retry, **extra)
            except OutboundError as error:  # the SSRF guard refused the base URL
                raise ConnectorError(f"BambooHR base URL refused: {error}", retryable=False) from error
        return self._client

    def _get(self, path: str, params: list[tuple[str, str]] | None = None) -> httpx.Response:
        try:
            return self._http().get(path, params=params)
        except RetryLater:
            raise
        except OutboundError as error:
            raise ConnectorError(f"BambooHR did not answer GET {path}: {error}", retryable=error.retryable) from error

    def _refused(self, response: httpx.Response, what: str) -> ConnectorError:
        """The ConnectorError for an answer that is not a success."""
        status = response.status_code
        reason = (response.headers.get("X-BambooHR-Error-Message") or "").strip()[:200]
        detail = f" ({reason})" if reason else ""
        if status == 401:
            return ConnectorError(f"BambooHR refused the API key (401){detail}: check the credential's api_key, "
                                  "that the key still exists and that the base URL is the company's "
                                  "https://<company>.bamboohr.com", retryable=False)
        if status == 403:
            return ConnectorError(f"BambooHR denied {what} (403){detail}: the API key's user needs access to "
                                  "employee data (check that user's access level and that it is enabled)",
                                  retryable=False)
        if status == 404:
            return ConnectorError(f"BambooHR has no {what} (404){detail}: check that the base URL is the "
                                  "company's https://<company>.bamboohr.com", retryable=False)
        if status >= 500 or status == 429:
            return ConnectorError(f"BambooHR failed {what} ({status}){detail}", retryable=True)
        return ConnectorError(f"BambooHR refused {what} ({status}){detail}", retryable=False)

    def _json(self, response: httpx.Response, what: str) -> Any:
        try:
            return response.json()
        except ValueError:
            raise ConnectorError(f"BambooHR answered {what} with something other than JSON (is the base URL the "
                                 "company's https://<company>.bamboohr.com?)", retryable=False) from None

    # --- metadata ---

    def _extra_fields(self) -> list[str]:
        """Custom field aliases and supervisorEmail: the fields List Employees may not serve."""
        if self._extra is None:
            response = self._get(FIELDS_PATH)
            if response.status_code != 200:
                raise self._refused(response, "the field list")
            fields = self._json(response, "the field list")
            if not isinstance(fields, list):
                raise ConnectorError("BambooHR's field list is not a list", retryable=False)
            aliases = [item.get("alias") for item in fields if isinstance(item, dict)]
            custom = list(dict.fromkeys(alias for alias in aliases
                                        if isinstance(alias, str) and alias.startswith("custom")))
            self._extra = [*custom[:MAX_EXTRA_FIELDS], *([SUPERVISOR_EMAIL] if SUPERVISOR_EMAIL in aliases else [])]
        return self._extra

    def attributes(self) -> list[str]:
        """Every attribute name a page's ``Employee.attributes`` may hold, less those the key may not read."""
        extra = self._extra_fields()
        names = [*LIST_BASE_FIELDS, *LIST_FIELDS, *extra]
        body, _ = self._list([("page[limit]", "1")])
        records = body["data"]
        if not records:
            return names
        record = self._complete([records[0]])[0]
        restricted = set(record.get("_restrictedFields") or ())
        return [name for name in names if name in record and name not in restricted]

    # --- pages ---

    def page(self, cursor: str | None, *, changed_since: datetime | None = None) -> Page:
        state = _decode(cursor) if cursor is not None else None
        if state is not None and "since" in state:
            return self._changed_page(state["since"], state.get("last"))
        if state is None and changed_since is not None:
            return self._changed_page(_since(changed_since), None)
        return self._full_page(state)

    def _list(self, params: list[tuple[str, str]]) -> tuple[dict[str, Any], bool]:
        """One List Employees answer with the fields asked for; ``True`` when BambooHR refused the cursor."""
        fields = ",".join([*LIST_FIELDS, *self._extra_fields()])
        response = self._get(LIST_PATH, [("sort", "employeeId"), ("fields", fields), *params])
        if response.status_code == 400 and any(key == "page[after]" for key, _ in params) and \
                _error_code(response) == "BadPage":
            return {}, True
        if response.status_code != 200:
            raise self._refused(response, "the employee list")
        body = self._json(response, "the employee list")
        if not isinstance(body, dict) or not isinstance(body.get("data"), list) or \
                not all(isinstance(record, dict) for record in body["data"]):
            raise ConnectorError("BambooHR's employee list has no data array of employees", retryable=False)
        return body, False

    def _full_page(self, state: dict[str, Any] | None) -> Page:
        limit = [("page[limit]", str(self.page_size))]
        last = state.get("last") if state else None
        body, refused = self._list([*limit, ("page[after]", state["after"])]) if state else self._list(limit)
        records = body.get("data", [])
        if refused:
            # The boundary employee is gone: list from the start and keep what follows the last one done.
            body, _ = self._list(limit)
            records = [record for record in body["data"] if _id_key(record.get("employeeId")) > _id_key(last)]
            page_last = body["data"][-1].get("employeeId") if body["data"] else None
            last = max(last, page_last, key=_id_key) if page_last is not None else last
        elif records:
            last = records[-1].get("employeeId")
        vendor_next = ((body.get("meta") or {}).get("page") or {}).get("nextCursor")
        next_cursor = _encode({"after": vendor_next, "last": last}) if vendor_next else None
        return Page(self._employees(records), next_cursor)

    def _changed_ids(self, since: str) -> list[int]:
        if since not in self._changed:
            response = self._get(CHANGED_PATH, [("since", since)])
            if response.status_code != 200:
                raise self._refused(response, "the changed employees")
            body = self._json(response, "the changed employees")
            changes = body.get("employees") if isinstance(body, dict) else None
            if isinstance(changes, list) and not changes:
                changes = {}  # an empty map may come back as an empty JSON array
            if not isinstance(changes, dict):
                raise ConnectorError("BambooHR's changed employees have no employees map", retryable=False)
            ids = set()
            for key, change in changes.items():
                action = change.get("action") if isinstance(change, dict) else None
                if action != "Deleted" and str(key).isdigit():
                    ids.add(int(key))
            self._changed[since] = sorted(ids)
        return self._changed[since]

    def _changed_page(self, since: str, last: str | None) -> Page:
        after = int(last) if last is not None and str(last).isdigit() else -1
        remaining = [employee_id for employee_id in self._changed_ids(since) if employee_id > after]
        batch = remaining[:self.page_size]
        if not batch:
            return Page([], None)
        body, _ = self._list([("page[limit]", str(len(batch))), *[("filter[ids][]", str(i)) for i in batch]])
        next_cursor = _encode({"since": since, "last": str(batch[-1])}) if len(remaining) > len(batch) else None
        return Page(self._employees(body["data"]), next_cursor)

    def _employees(self, records: list[Any]) -> list[Employee]:
        return [_employee(record) for record in self._complete(records) if record.get("employeeId") is not None]

    def _complete(self, records: list[Any]) -> list[dict[str, Any]]:
        """The records with the extra fields List Employees left out, read with Get Employee."""
        extra = self._extra_fields()
        done = []
        for record in records:
            missing = [name for name in extra if name not in record]
            if missing and record.get("employeeId") is not None:
                record = {**record, **self._details(str(record["employeeId"]), missing)}
            done.append(record)
        return done

    def _details(self, employee_id: str, fields: list[str]) -> dict[str, Any]:
        response = self._get(f"{LIST_PATH}/{employee_id}", [("fields", ",".join(fields))])
        if response.status_code in (403, 404):  # this employee only: hidden from the key, or deleted meanwhile
            return {}
        if response.status_code != 200:
            raise self._refused(response, f"employee {employee_id}")
        body = self._json(response, f"employee {employee_id}")
        # Restricted fields are omitted: only what came back is readable.
        return {name: body[name] for name in fields if isinstance(body, dict) and name in body}

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


TRAINING_TYPES_PATH = "/api/v1/training/type"
TRAINING_RECORDS_PATH = "/api/v1/training/record/employee/{employee_id}"


class BambooHRWriter:
    """Results written back as training records of a chosen training type (write-back, shared.hrms.writeback).

    Target: ``{"training_type_id": <int>}``, checked against List Training Types (an object keyed by id). A
    record carries ``completed`` (the result's date), ``type``, ``hours`` and ``credits`` when given, and
    ``notes``: the title, the score when there is one, and the result's marker ``[ec:<result id>]``, by which
    a redelivered write finds the record it already made (List Employee Training Records filtered by type:
    an object keyed by record id, or ``[]`` when the employee has none; numbers come back as strings, the
    type as a string when listed and an integer when created). Create is a POST: never retried on a 5xx
    (only a 429), so an uncertain write is looked for before it is made again.
    """

    def __init__(self, settings: ConnectorSettings) -> None:
        self._connector = BambooHRConnector(settings)

    def _types(self) -> dict[str, Any]:
        response = self._connector._get(TRAINING_TYPES_PATH)
        if response.status_code != 200:
            raise self._connector._refused(response, "the training types")
        types = self._connector._json(response, "the training types")
        return types if isinstance(types, dict) else {}

    def check_target(self, target: Mapping[str, Any]) -> dict[str, Any]:
        raw = target.get("training_type_id")
        if isinstance(raw, bool) or not (isinstance(raw, int) or (isinstance(raw, str) and raw.isdigit())):
            raise ConnectorError("BambooHR write-back needs {\"training_type_id\": <the training type's id>}",
                                 retryable=False)
        types = self._types()
        if str(raw) not in types:
            known = ", ".join(f"{key} ({(value or {}).get('name', '?')})" for key, value in sorted(types.items()))
            raise ConnectorError(f"BambooHR has no training type {raw}; its training types: {known or 'none'}",
                                 retryable=False)
        return {"training_type_id": int(raw)}

    def find_written(self, hrms_id: str, result: Result, target: Mapping[str, Any]) -> str | None:
        path = TRAINING_RECORDS_PATH.format(employee_id=hrms_id)
        response = self._connector._get(path, [("type", str(target["training_type_id"]))])
        if response.status_code == 404:
            raise WriteRefused(f"BambooHR has no employee {hrms_id} (404)")
        if response.status_code != 200:
            raise self._connector._refused(response, f"the training records of employee {hrms_id}")
        records = self._connector._json(response, "the training records")
        if not isinstance(records, dict):  # [] when the employee has none
            return None
        return next((str(key) for key, record in records.items()
                     if isinstance(record, dict) and result.marker in (record.get("notes") or "")), None)

    def write(self, hrms_id: str, result: Result, target: Mapping[str, Any]) -> str:
        notes = result.title if result.score is None else f"{result.title} (score {result.score:g})"
        body: dict[str, Any] = {"completed": result.completed_on, "type": int(target["training_type_id"]),
                                "notes": f"{notes} {result.marker}"}
        if result.hours is not None:
            body["hours"] = result.hours
        if result.credits is not None:
            body["credits"] = result.credits
        path = TRAINING_RECORDS_PATH.format(employee_id=hrms_id)
        try:
            response = self._connector._http().post(path, json=body)
        except RetryLater:
            raise
        except OutboundError as error:
            raise ConnectorError(f"BambooHR did not answer POST {path}: {error}", retryable=error.retryable) \
                from error
        if response.status_code in (200, 201):
            created = self._connector._json(response, "the new training record")
            return str(created.get("id")) if isinstance(created, dict) and created.get("id") is not None else ""
        if response.status_code in (400, 404):
            reason = (response.headers.get("X-BambooHR-Error-Message") or "").strip()[:200]
            raise WriteRefused(f"BambooHR refused the training record for employee {hrms_id} "
                               f"({response.status_code}{': ' + reason if reason else ''})")
        raise self._connector._refused(response, f"a training record for employee {hrms_id}")

    def close(self) -> None:
        self._connector.close()


def writer(settings: ConnectorSettings) -> BambooHRWriter:
    return BambooHRWriter(settings)


def connect(settings: ConnectorSettings) -> BambooHRConnector:
    return BambooHRConnector(settings)


# --- mapping -------------------------------------------------------------------------------------------------


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, (dict, list)):
        return None
    text = str(value).strip()
    return text or None


def _day(value: Any) -> str | None:
    """A YYYY-MM-DD date, or None (BambooHR writes an empty date as 0000-00-00)."""
    text = _text(value)
    if text is None or not _DATE.fullmatch(text[:10]):
        return None
    try:
        return date.fromisoformat(text[:10]).isoformat()
    except ValueError:
        return None


def normalize_status(status: str | None, employment_status: str | None, hire_date: str | None,
                     *, today: date | None = None) -> str:
    """onboarding | active | leave | inactive from BambooHR's status (Active/Inactive), the employment status
    (a company-defined list: Full-Time, Part-Time, Terminated, ...) and the hire date."""
    label = (employment_status or "").lower()
    if "terminat" in label:
        return "inactive"
    if "leave" in label:
        return "leave"
    if any(word in label for word in _ONBOARDING_WORDS):
        return "onboarding"
    if hire_date and hire_date > (today or datetime.now(UTC).date()).isoformat():
        return "onboarding"  # a future hire (BambooHR shows them Inactive until their start)
    if (status or "").strip().lower() == "inactive":
        return "inactive"
    return "active"


def _employee(record: Mapping[str, Any]) -> Employee:
    restricted = set(record.get("_restrictedFields") or ())
    attributes: dict[str, Any] = {}
    for name, value in record.items():
        if name.startswith("_") or name in restricted:
            continue
        attributes[name] = _day(value) if isinstance(value, str) and value.startswith("0000-00-00") else value

    def readable(name: str) -> Any:
        return None if name in restricted else record.get(name)

    manager_id = _text(readable("reportsToId"))
    hire_date = _day(readable("hireDate"))
    return Employee(
        hrms_id=str(record["employeeId"]),
        email=_text(readable("workEmail")),
        first_name=_text(readable("firstName")),
        last_name=_text(readable("lastName")),
        job_title=_text(readable("jobTitleName")),
        department=_text(readable("departmentName")),
        location=_text(readable("locationName")),
        manager_hrms_id=manager_id if manager_id not in (None, "0") else None,
        manager_email=_text(readable(SUPERVISOR_EMAIL)),
        status=normalize_status(_text(readable("status")), _text(readable("employmentStatusName")), hire_date),
        start_date=hire_date,
        attributes=attributes,
    )


# --- cursors -------------------------------------------------------------------------------------------------


def _encode(state: dict[str, Any]) -> str:
    return json.dumps(state, separators=(",", ":"), sort_keys=True)


def _decode(cursor: str) -> dict[str, Any]:
    try:
        state = json.loads(cursor)
    except ValueError:
        state = None
    valid = isinstance(state, dict) and (
        (isinstance(state.get("after"), str) and state["after"]) or isinstance(state.get("since"), str))
    if not valid:
        raise ConnectorError("the sync checkpoint is not a BambooHR cursor (start a full sync again)",
                             retryable=False)
    return state


def _since(moment: datetime) -> str:
    """ISO 8601 in UTC, whole seconds (rounded down, so nothing changed in the cut-off second is missed)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _id_key(value: Any) -> tuple[int, int, str]:
    """Employee ids in BambooHR's order (numeric); None before every id."""
    if value is None:
        return (0, 0, "")
    text = str(value)
    return (1, int(text), "") if text.isdigit() else (2, 0, text)


def _error_code(response: httpx.Response) -> str | None:
    """``error.code`` of List Employees' 400 body (``BadRequest`` or ``BadPage``)."""
    try:
        error = response.json().get("error")
    except (ValueError, AttributeError):
        return None
    return error.get("code") if isinstance(error, dict) else None

