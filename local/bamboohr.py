"""A local stand-in of the BambooHR API (the parts the HRMS connector reads, and the training records its
write-back makes), serving a ``Workforce``.

Shapes, limits and errors follow BambooHR's OpenAPI document (../shared/references/hrms/bamboohr/openapi.yaml,
2026-04). Standard library HTTP server on 127.0.0.1 (HTTP/1.1 keep-alive), one thread per connection; the
stand-in answers at its own origin, which plays ``https://{companyDomain}.bamboohr.com``. Paths are also served
under the legacy gateway prefix ``/api/gateway.php/{companyDomain}/v1/...``, and a trailing ``/`` is ignored.

Authentication: HTTP Basic with the API key as user name and any password. Missing or wrong -> 401 with an empty
body and ``X-BambooHR-Error-Message`` (BambooHR's error header; most error answers have no body).

Endpoints (GET, except creating a training record):

- ``/api/v1/employees`` (List Employees): ``{"data": [...], "meta": {"total", "page": {"limit", "nextCursor",
  "prevCursor"}}, "_links": {"self": {"href"}, "next"?: {"href"}, "prev"?: {"href"}}}``. Every record has
  ``employeeId`` (string), ``firstName``, ``lastName``, ``preferredName``, ``photoUrl``, ``jobTitleName``,
  ``status`` (Active | Inactive) and ``_restrictedFields``, plus the ``fields=`` (comma list) the spec
  enumerates (``LIST_OPTIONAL_FIELDS``: workEmail, hireDate, departmentName, locationName, employmentStatusName,
  reportsToId, reportsToName, ...). Other names, custom fields included, are silently ignored as the spec says,
  unless the stand-in is made with ``list_custom_fields=True`` (then custom fields and ``supervisorEmail`` come
  back too: for testing a connector against an API that is more generous than documented).
  Paging: ``page[limit]`` 1..2500 (default 250; else 400 ``BadRequest``), ``page[after]`` = the last page's
  ``meta.page.nextCursor``, ``page[before]`` = its ``prevCursor``. Cursors are base64 JSON
  ``{"cursor": "after-<employeeId>"}`` / ``"before-<employeeId>"`` naming the boundary employee; a malformed
  cursor, one of the wrong direction, or one whose boundary employee is gone or no longer matches the filter ->
  400 ``{"error": {"code": "BadPage", "message"}}``. ``nextCursor`` is null when nothing follows (so a page that
  ends exactly at the last employee has none). Filters (deepObject): ``filter[ids][]=1&filter[ids][]=2`` or
  ``filter[ids]=1,2``, ``filter[status]=active|inactive``, ``filter[firstName|lastName|jobTitleName]``
  (case-insensitive substring); a filter on a restricted field excludes every employee. ``sort``: comma list of
  ``employeeId, firstName, lastName, preferredName, jobTitleName, status``, ``-`` for descending (default
  ``employeeId``). A bad filter or sort -> 400 ``BadRequest``. Restricted fields are null and listed in
  ``_restrictedFields``. This endpoint always answers JSON.
- ``/api/v1/employees/{id}?fields=a,b`` (Get Employee; default ``firstName,lastName``; field aliases or numeric
  field ids): ``{"id": "123", <each requested readable field>}``; restricted fields are omitted (as BambooHR does)
  and unknown names ignored; more than 400 fields -> 400; an unknown or departed id -> 404. Id 0 is the API key's
  own employee (the first one).
- ``/api/v1/employees/changed?since=<ISO 8601>[&type=inserted|updated|deleted|all]`` -> ``{"latest", "employees":
  {"<id>": {"id", "action": Inserted | Updated | Deleted, "lastChanged"}}}``: employees whose last change is at or
  after ``since`` (``Workforce.change`` moves it; ``depart`` and ``hire`` here record Deleted / Inserted);
  ``latest`` is the newest ``lastChanged`` (null when none). Missing or malformed ``since`` or a bad ``type`` -> 400.
- ``/api/v1/meta/fields`` -> ``[{"id", "name", "type", "alias"?}]``: standard fields (Get Employee names such as
  ``department``, ``location``, ``employmentStatus``, ``supervisorEmail``) and the custom fields
  ``customCompetencies`` (text) and ``customReviewRating`` (int; BambooHR sends its value as a string).

- ``/api/v1/training/type`` (List Training Types) -> an object keyed by training type id (a string), each a
  TrainingType ``{"id" (int), "name", "renewable", "frequency", "dueFromHireDate", "required", "category",
  "linkUrl", "description", "allowEmployeesToMarkComplete"}``; ``category`` is ``{"id", "name"}`` or, when the type
  has none, an empty ARRAY (as the spec says). The stand-in's types are ``training_types`` (id -> a name, or a
  mapping of those fields; default ``DEFAULT_TRAINING_TYPES``: 12 "Coaching programme", 13 "Assessment").
- ``/api/v1/training/record/employee/{employeeId}[?type=<training type id>]`` (List Employee Training Records) ->
  an object keyed by record id (a string) whose values are TrainingRecords ``{"id" (int), "employeeId" (string),
  "completed", "notes", "instructor", "credits", "hours", "cost", "type"}`` with ``credits`` and ``hours`` as
  strings (or null), ``cost`` as ``"<amount> <currency>"`` (or null) and ``type`` as a STRING; when the employee
  has no record (of that type) the answer is an empty ARRAY ``[]``, BambooHR's quirk. A ``type`` that is not an
  integer -> 400.
- ``POST /api/v1/training/record/employee/{employeeId}`` (Create Employee Training Record), a JSON object:
  ``completed`` (``YYYY-MM-DD``, required), ``type`` (an existing training type id, required; an integer or, as the
  spec's own example sends it, a digit string), ``hours`` and ``credits`` (numbers, or numeric strings as in the
  example), ``notes`` and ``instructor`` (strings), ``cost`` (``{"currency", "amount"}``); other keys are ignored.
  -> 201 with the TrainingRecord, its ``type`` an INTEGER (the other quirk: a string when listed). A missing or
  malformed field, an unknown training type or a body that is not a JSON object -> 400 with an empty body and the
  reasons in ``X-BambooHR-Error-Message``. ``training_records(employee_id)`` reads what was written.
- Both record paths: an unknown or departed employee (or an id that is not a number) -> 404; another method -> 405.

Get Employee, changed and meta/fields answer XML unless ``Accept`` names ``application/json`` (as BambooHR's do);
the training endpoints always answer JSON.
Anything else -> 404 (empty body, ``X-BambooHR-Error-Message``); another method -> 405.

Mapping of the workforce: ``status`` Active, except onboarding (a pre-hire) and inactive people, who are Inactive;
``employmentStatusName`` Full-Time / Part-Time, "Leave of Absence", "Pre-Hire" or "Terminated"; ``reportsToId`` and
``supervisorEmail`` from the manager; ``customCompetencies`` / ``customReviewRating`` from the custom fields.

Throttling and faults (API calls only, after authentication; the training endpoints too, a faulted create writes
nothing):

- ``limit_rate(per_minute)``: more than N calls in a sliding minute -> the throttling answer: ``throttle_status``
  (429, BambooHR's answer since 2026-09-16, or 503 as it answered before) with ``Retry-After`` (whole seconds until
  the window has room) and ``{"error": {"code": <status>, "message": "Over rate limit, ..."}}``. None lifts it.
- ``fail_next(status, count=1, retry_after=None, path_contains=None)``: the next ``count`` calls (whose path and
  query contain ``path_contains``) get ``status`` with BambooHR's body for it: the throttling body for 429 / 503,
  ``{"error": {"code": "BadRequest", ...}}`` for 400, otherwise an empty body; ``Retry-After`` only when given.
- ``drop_next(count=1)``: the next ``count`` calls are read and the connection is closed without an answer
  (BambooHR warns of broken connections with no HTTP response).
- ``clear_faults()`` forgets pending faults, drops and the rate limit.
- ``change(indexes)``, ``depart(indexes)``, ``hire(count)`` change the workforce and what ``changed`` reports;
  ``restricted`` (a set of field names, settable) is what the API key may not read.

Observability: ``requests_log`` ((method, path with query, status) of every API call; 0 for a dropped one) and
``requests_count``.

Control endpoints (no auth, never faulted, throttled or logged): ``POST /_standin/fail`` {status, count?,
retry_after?, path_contains?} (``DELETE /_standin/fail``: clear_faults); ``POST /_standin/drop`` {count?};
``POST /_standin/rate`` {per_minute: n|null}; ``POST /_standin/change`` {indexes}; ``POST /_standin/depart``
{indexes}; ``POST /_standin/hire`` {count} -> {indexes}; ``POST /_standin/restrict`` {fields: [...]};
``GET /_standin/requests`` -> {requests: [[method, path, status], ...]}. A malformed body -> 400.

Command line: ``python -m local.bamboohr serve --port 7086 --employees 300 [--domain example.com]
[--api-key-env BAMBOOHR_STANDIN_API_KEY] [--restricted workEmail,...] [--throttle-status 429|503]
[--list-custom-fields]``; the API key is read from the environment variable named by ``--api-key-env``
(``DEFAULT_API_KEY`` when it is unset), never from argv.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import json
import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from http import HTTPStatus
from http.server import ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit
from xml.etree import ElementTree

from local.hrms_people import TITLES, Person, Workforce
from local.hrms_standin import Answer, HrmsStandIn, command_line, run_command, serve_standin

DEFAULT_PORT = 7086
DEFAULT_API_KEY = "bamboohr-local-api-key"
DEFAULT_API_KEY_ENV = "BAMBOOHR_STANDIN_API_KEY"
DEFAULT_PAGE_LIMIT = 250
MAX_PAGE_LIMIT = 2500
MAX_GET_FIELDS = 400

# What List Employees always returns, and the optional fields its ``fields`` parameter accepts (the spec's enum).
LIST_BASE_FIELDS = ("employeeId", "firstName", "lastName", "preferredName", "photoUrl", "jobTitleName", "status")
LIST_OPTIONAL_FIELDS = (
    "workEmail", "homeEmail", "bestEmail", "middleName", "workPhone", "workPhoneExtension", "mobilePhone",
    "homePhone", "skypeUsername", "linkedinUrl", "facebookUrl", "instagramUrl", "twitterUrl", "pinterestUrl",
    "birthDate", "hireDate", "divisionName", "divisionId", "departmentName", "departmentId", "locationName",
    "locationId", "jobTitleId", "employmentStatusName", "employmentStatusId", "reportsToName", "reportsToId",
)
SORTABLE_FIELDS = ("employeeId", "firstName", "lastName", "preferredName", "jobTitleName", "status")
CUSTOM_FIELDS = ("customCompetencies", "customReviewRating")

# /api/v1/meta/fields: (id, name, type, alias). Aliases are the names Get Employee answers under.
META_FIELDS: tuple[tuple[int | str, str, str, str | None], ...] = (
    (1, "First name", "text", "firstName"), (2, "Last name", "text", "lastName"),
    (1358, "Preferred name", "text", "preferredName"), (3, "Middle name", "text", "middleName"),
    (15, "Work email", "email", "workEmail"), (4, "Department", "list", "department"),
    (5, "Location", "list", "location"), (6, "Division", "list", "division"),
    (17, "Job title", "list", "jobTitle"), (16, "Employment status", "list", "employmentStatus"),
    (18, "Hire date", "date", "hireDate"), (19, "Reporting to", "employee", "supervisor"),
    (4047, "Supervisor email", "email", "supervisorEmail"), (20, "Status", "status", "status"),
    (21, "Birth date", "date", "birthDate"), (22, "Home email", "email", "homeEmail"),
    ("4340.4", "Emergency contact: phone", "phone", None),
    (4001, "Competencies", "text", "customCompetencies"), (4002, "Review rating", "int", "customReviewRating"),
)
_FIELD_BY_ID = {str(field_id): alias for field_id, _, _, alias in META_FIELDS if alias}

# Workforce status -> (BambooHR status, employment status id, employment status name).
_EMPLOYMENT = {
    "active": ("Active", "1", "Full-Time"),
    "leave": ("Active", "3", "Leave of Absence"),
    "onboarding": ("Inactive", "4", "Pre-Hire"),  # a future hire is Inactive until the start date
    "inactive": ("Inactive", "5", "Terminated"),
}
_PART_TIME = ("Active", "2", "Part-Time")

# Training types (``training_types``): id -> a name, or a mapping of TrainingType fields. The fields a type may
# set, with what BambooHR answers when they are not set (``category`` is an empty ARRAY when there is none).
DEFAULT_TRAINING_TYPES: dict[int, str | Mapping[str, Any]] = {12: "Coaching programme", 13: "Assessment"}
_TRAINING_TYPE_DEFAULTS: dict[str, Any] = {
    "renewable": False, "frequency": None, "dueFromHireDate": None, "required": None, "category": [],
    "linkUrl": None, "description": None, "allowEmployeesToMarkComplete": False}


def _iso(moment: datetime) -> str:
    """BambooHR's timestamp form: ``2026-11-27T10:15:00+00:00``."""
    return moment.astimezone(UTC).replace(microsecond=0).isoformat()


def _parse_since(value: str) -> datetime:
    moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00").replace(" ", "+"))
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def encode_cursor(direction: str, employee_id: str) -> str:
    """A List Employees cursor as BambooHR shapes it: base64 of ``{"cursor": "after-<id>"}``."""
    return base64.b64encode(json.dumps({"cursor": f"{direction}-{employee_id}"}).encode()).decode()


def _decode_cursor(value: str) -> tuple[str, str] | None:
    try:
        document = json.loads(base64.b64decode(value, validate=True))
        direction, _, employee_id = document["cursor"].partition("-")
    except (ValueError, binascii.Error, KeyError, TypeError, AttributeError):
        return None
    return (direction, employee_id) if direction in ("after", "before") and employee_id.isdigit() else None


# --- answers ------------------------------------------------------------------------------------------------------


def _empty(status: int, message: str, headers: Mapping[str, str] | None = None) -> Answer:
    """Most BambooHR errors: no body, the reason in ``X-BambooHR-Error-Message``."""
    return Answer(status, b"", "application/json", {"X-BambooHR-Error-Message": message, **(headers or {})})


def _bad_request(code: str, message: str) -> Answer:
    """List Employees' 400: ``{"error": {"code": "BadRequest" | "BadPage", "message"}}``."""
    return Answer.json(400, {"error": {"code": code, "message": message}}, {"X-BambooHR-Error-Message": message})


def _throttled(status: int, retry_after: float | None) -> Answer:
    seconds = "a moment" if retry_after is None else f"{retry_after:g} seconds"
    message = f"Over rate limit, please try again in {seconds}"
    headers = {"X-BambooHR-Error-Message": message}
    if retry_after is not None:
        headers["Retry-After"] = f"{retry_after:g}"
    return Answer.json(status, {"error": {"code": status, "message": message}}, headers)


def _fault_answer(status: int, retry_after: float | None) -> Answer:
    if status in (429, 503):
        answer = _throttled(status, retry_after)
        if retry_after is None:
            answer.headers.pop("Retry-After", None)
        return answer
    answer = _bad_request("BadRequest", "Invalid request parameters.") if status == 400 else \
        _empty(status, _phrase(status))
    if retry_after is not None:
        answer.headers["Retry-After"] = f"{retry_after:g}"
    return answer


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return f"Error {status}"


def _training_type(type_id: int, spec: str | Mapping[str, Any]) -> dict[str, Any]:
    """A TrainingType from a name, or from a mapping of its fields (``name`` required)."""
    fields: dict[str, Any] = {"name": spec} if isinstance(spec, str) else dict(spec)
    unknown = set(fields) - {"name", *_TRAINING_TYPE_DEFAULTS}
    if unknown or not isinstance(fields.get("name"), str) or not fields["name"]:
        raise ValueError(f"training type {type_id}: a name, or a mapping with name and any of "
                         f"{', '.join(_TRAINING_TYPE_DEFAULTS)}")
    return {"id": type_id, "name": fields["name"],
            **{name: fields.get(name, default) for name, default in _TRAINING_TYPE_DEFAULTS.items()}}


def _is_day(value: Any) -> bool:
    if not isinstance(value, str) or len(value) != 10:
        return False
    try:
        date.fromisoformat(value)
    except ValueError:
        return False
    return True


def _integer(value: Any) -> int | None:
    """An integer, or its decimal string (the spec's own example sends ``"type": "4"``)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    return int(value.strip()) if isinstance(value, str) and value.strip().isdigit() else None


def _decimal_text(value: Any) -> str | None:
    """A number (or numeric string) as BambooHR returns it, a string (``16``, ``1.5``); None when it is not one."""
    if value is None or isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        return None
    if not number.is_finite():
        return None
    text = format(number.normalize(), "f")
    return "0" if text in ("-0", "") else text


def _cost_text(value: Any) -> str | None:
    """``{"currency", "amount"}`` as a record shows it: ``"100.00 USD"``; None when malformed."""
    if not isinstance(value, dict) or set(value) - {"currency", "amount"}:
        return None
    currency, amount = value.get("currency"), value.get("amount")
    if not (isinstance(currency, str) and len(currency) == 3 and currency.isalpha()):
        return None
    if not isinstance(amount, str) or _decimal_text(amount) is None:
        return None
    return f"{amount.strip()} {currency.upper()}"


def _xml(root: ElementTree.Element) -> Answer:
    return Answer(200, ElementTree.tostring(root, encoding="utf-8", xml_declaration=True), "text/xml")


# --- the stand-in -------------------------------------------------------------------------------------------------


class BambooHRStandIn(HrmsStandIn):
    """BambooHR for ``workforce``'s people; see the module docstring for the endpoints and the faults."""

    thread_name = "bamboohr-stand-in"
    log_name = "bamboohr stand-in"
    control_not_found = "unknown control endpoint"
    control_not_an_object = "malformed control request: the body must be a JSON object"
    control_malformed = "malformed control request: {}"

    def __init__(self, workforce: Workforce, *, api_key: str = DEFAULT_API_KEY, port: int = 0,
                 restricted: Iterable[str] = (), throttle_status: int = 429,
                 list_custom_fields: bool = False,
                 training_types: Mapping[int, str | Mapping[str, Any]] | None = None) -> None:
        if throttle_status not in (429, 503):
            raise ValueError("throttle_status is 429 (BambooHR since 2026-09-16) or 503 (before)")
        types = DEFAULT_TRAINING_TYPES if training_types is None else training_types
        self.training_types: dict[int, dict[str, Any]] = {
            int(type_id): _training_type(int(type_id), spec) for type_id, spec in types.items()}
        super().__init__(port=port)
        self.workforce = workforce
        self.api_key = api_key
        self.restricted: set[str] = set(restricted)
        self.throttle_status = throttle_status
        self.list_custom_fields = list_custom_fields
        self._departed_at: dict[int, datetime] = {}
        self._inserted_at: dict[int, datetime] = {}
        self._training_records: dict[int, dict[int, dict[str, Any]]] = {}  # employee id -> record id -> record
        self._next_record_id = 1

    def _make_server(self) -> ThreadingHTTPServer:
        server = super()._make_server()
        self.port = server.server_address[1]  # a restart binds the same port
        return server

    # --- faults and workforce changes ---

    def fail_next(self, status: int, *, count: int = 1, retry_after: float | None = None,
                  path_contains: str | None = None) -> None:
        """Answer the next ``count`` API calls (whose path and query contain ``path_contains``) with ``status``,
        any number (one HTTP does not know is worded "Error <status>")."""
        self._plan.fail_next(status, count=count, retry_after=retry_after, path_contains=path_contains)

    def depart(self, indexes: Iterable[int]) -> None:
        """These employees are deleted (gone from every listing; ``changed`` reports them Deleted)."""
        indexes = list(indexes)
        now = datetime.now(UTC)
        with self._lock:
            self._departed_at.update(dict.fromkeys(indexes, now))
        self.workforce.depart(indexes)

    def hire(self, count: int) -> list[int]:
        """New employees at the end (``changed`` reports them Inserted)."""
        indexes = self.workforce.hire(count)
        now = datetime.now(UTC)
        with self._lock:
            self._inserted_at.update(dict.fromkeys(indexes, now))
        return indexes

    # --- training records ---

    def training_records(self, employee_id: int | str) -> list[dict[str, Any]]:
        """The employee's training records as List Employee Training Records shows them (``type`` a string,
        ``hours`` and ``credits`` strings), in the order they were made."""
        with self._lock:
            records = self._training_records.get(int(employee_id), {})
            return [dict(record) for _, record in sorted(records.items())]

    def _training(self, method: str, route: list[str], params: dict[str, str], body: bytes) -> Answer:
        """``/api/v1/training/...``: List Training Types, List / Create Employee Training Record(s)."""
        if route == ["type"]:
            if method != "GET":
                return _empty(405, "Method not allowed")
            return Answer.json(200, {str(type_id): dict(training_type)
                                     for type_id, training_type in sorted(self.training_types.items())})
        if len(route) != 3 or route[:2] != ["record", "employee"]:
            return _empty(404, "Not found")
        if method not in ("GET", "POST"):
            return _empty(405, "Method not allowed")
        person = self.workforce.by_id(int(route[2])) if route[2].isdigit() else None
        if person is None:
            return _empty(404, "Employee not found")
        if method == "GET":
            return self._list_training_records(person.id, params)
        return self._create_training_record(person.id, body)

    def _list_training_records(self, employee_id: int, params: dict[str, str]) -> Answer:
        wanted = params.get("type")
        if wanted is not None and not wanted.strip().isdigit():
            return _empty(400, "type must be a training type ID (an integer)")
        records = [record for record in self.training_records(employee_id)
                   if wanted is None or record["type"] == wanted.strip()]
        if not records:
            return Answer.json(200, [])  # BambooHR's empty map is an empty JSON array
        return Answer.json(200, {str(record["id"]): record for record in records})

    def _create_training_record(self, employee_id: int, body: bytes) -> Answer:
        try:
            document = json.loads(body or b"null")
        except ValueError:
            return _empty(400, "The request body is not valid JSON")
        if not isinstance(document, dict):
            return _empty(400, "The request body must be a JSON object")
        problems: list[str] = []
        completed = document.get("completed")
        if not _is_day(completed):
            problems.append("completed is required and must be in yyyy-mm-dd format")
        type_id = _integer(document.get("type"))
        if type_id is None:
            problems.append("type is required and must be a training type ID")
        elif type_id not in self.training_types:
            problems.append(f"type {type_id} is not an existing training type")
        numbers: dict[str, str | None] = {}
        for name in ("hours", "credits"):
            numbers[name] = _decimal_text(document.get(name))
            if document.get(name) is not None and numbers[name] is None:
                problems.append(f"{name} must be a number")
        texts: dict[str, str | None] = {}
        for name in ("notes", "instructor"):
            value = document.get(name)
            texts[name] = value if isinstance(value, str) else None
            if value is not None and not isinstance(value, str):
                problems.append(f"{name} must be a string")
        cost = _cost_text(document.get("cost"))
        if document.get("cost") is not None and cost is None:
            problems.append("cost must be {\"currency\": <ISO 4217 code>, \"amount\": <decimal string>}")
        if problems:
            return _empty(400, "; ".join(problems))
        with self._lock:
            record_id = self._next_record_id
            self._next_record_id += 1
            record = {"id": record_id, "employeeId": str(employee_id), "completed": completed,
                      "notes": texts["notes"], "instructor": texts["instructor"], "credits": numbers["credits"],
                      "hours": numbers["hours"], "cost": cost, "type": str(type_id)}
            self._training_records.setdefault(employee_id, {})[record_id] = record
        return Answer.json(201, {**record, "type": type_id})  # an integer on create, a string when listed

    # --- records ---

    def record(self, person: Person) -> dict[str, Any]:
        """Every field the stand-in knows for ``person``, by API name (list names and Get Employee aliases)."""
        manager = self.workforce.person(person.manager_index) if person.manager_index is not None else None
        status, employment_id, employment = _EMPLOYMENT[person.status]
        if person.status == "active" and person.index % 5 == 4:
            status, employment_id, employment = _PART_TIME
        return {
            "employeeId": str(person.id), "firstName": person.first_name, "lastName": person.last_name,
            "preferredName": None, "photoUrl": f"{self.base_url}/images/photo_person_{person.id}.jpg",
            "jobTitleName": person.title, "status": status,
            "workEmail": person.email, "homeEmail": None, "bestEmail": person.email, "middleName": None,
            "workPhone": None, "workPhoneExtension": None, "mobilePhone": None, "homePhone": None,
            "skypeUsername": None, "linkedinUrl": None, "facebookUrl": None, "instagramUrl": None,
            "twitterUrl": None, "pinterestUrl": None, "birthDate": None, "hireDate": person.hire_date,
            "divisionName": "EMEA", "divisionId": "1", "departmentName": person.department,
            "departmentId": str(person.department_id), "locationName": person.office,
            "locationId": str(person.office_id), "jobTitleId": str(TITLES.index(person.title) + 1),
            "employmentStatusName": employment, "employmentStatusId": employment_id,
            "reportsToName": f"{manager.first_name} {manager.last_name}" if manager else None,
            "reportsToId": str(manager.id) if manager else None,
            # Get Employee's names for the same things, and what only Get Employee serves
            "department": person.department, "location": person.office, "division": "EMEA",
            "jobTitle": person.title, "employmentStatus": employment,
            "supervisor": f"{manager.last_name}, {manager.first_name}" if manager else None,
            "supervisorEmail": manager.email if manager else None,
            "customCompetencies": person.competencies, "customReviewRating": str(person.review_rating),
        }

    # --- HTTP ---

    def _api_answer(self, method: str, target: str, headers: Mapping[str, str], body: bytes) -> Answer:
        parts = urlsplit(target)
        return self._api(method, parts.path.rstrip("/") or "/", parts.query, target, headers, body)

    def _failure_answer(self) -> Answer:
        return _empty(500, "There was an unknown server error")

    def _authorized(self, headers: Mapping[str, str]) -> bool:
        scheme, _, encoded = (headers.get("Authorization") or "").strip().partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, _, _ = base64.b64decode(encoded.strip(), validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        return user == self.api_key

    def _admit(self) -> Answer | None:
        """The throttling answer when the rate limit is reached; None when the call may proceed."""
        throttle = self._plan.admit()
        if throttle is None or throttle.admitted:
            return None
        return _throttled(self.throttle_status, throttle.wait)

    def _take_fault(self, target: str) -> Answer | None:
        fault = self._plan.take_fault(target)
        return None if fault is None else _fault_answer(fault.status, fault.retry_after)

    def _api(self, method: str, path: str, query: str, target: str, headers: Mapping[str, str],
             body: bytes = b"") -> Answer:
        if not self._authorized(headers):
            return _empty(401, "Invalid API key", {"WWW-Authenticate": 'Basic realm="BambooHR"'})
        refused = self._admit() or self._take_fault(target)
        if refused is not None:
            return refused
        segments = path.strip("/").split("/")
        if segments[:2] == ["api", "gateway.php"] and len(segments) > 3:
            segments = ["api", *segments[3:]]  # /api/gateway.php/{company}/v1/... is the legacy form
        if segments[:2] != ["api", "v1"]:
            return _empty(404, "Not found")
        route = segments[2:]
        if route[:1] == ["training"]:
            return self._training(method, route[1:], dict(parse_qsl(query, keep_blank_values=True)), body)
        if route not in (["employees"], ["employees", "changed"], ["meta", "fields"]) and \
                not (len(route) == 2 and route[0] == "employees" and route[1].isdigit()):
            return _empty(404, "Not found")
        if method != "GET":
            return _empty(405, "Method not allowed")
        params = parse_qsl(query, keep_blank_values=True)
        wants_json = "application/json" in (headers.get("Accept") or "")
        if route == ["employees"]:
            return self._list(params)
        if route == ["employees", "changed"]:
            return self._changed(dict(params), wants_json)
        if route == ["meta", "fields"]:
            return self._fields(wants_json)
        return self._get_employee(int(route[1]), dict(params), wants_json)

    def _list(self, params: list[tuple[str, str]]) -> Answer:
        single = dict(params)
        try:
            limit = int(single.get("page[limit]", DEFAULT_PAGE_LIMIT))
        except ValueError:
            return _bad_request("BadRequest", "page[limit] must be an integer")
        if not 1 <= limit <= MAX_PAGE_LIMIT:
            return _bad_request("BadRequest", f"page[limit] must be between 1 and {MAX_PAGE_LIMIT}")
        requested = {name.strip() for name in single.get("fields", "").split(",") if name.strip()}
        allowed = set(LIST_OPTIONAL_FIELDS) | ({*CUSTOM_FIELDS, "supervisorEmail"} if self.list_custom_fields
                                               else set())
        optional = [name for name in (*LIST_OPTIONAL_FIELDS, *CUSTOM_FIELDS, "supervisorEmail")
                    if name in requested and name in allowed]  # others are silently ignored, as documented
        restricted = set(self.restricted)
        people = list(self.workforce.people())
        try:
            people = self._filtered(people, params, restricted)
            people = self._sorted(people, single.get("sort", "employeeId"), restricted)
        except ValueError as error:
            return _bad_request("BadRequest", str(error))
        after, before = single.get("page[after]"), single.get("page[before]")
        if after is not None and before is not None:
            return _bad_request("BadPage", "page[after] and page[before] cannot be combined")
        ids = [str(person.id) for person in people]
        start, end = 0, min(limit, len(people))
        for direction, value in (("after", after), ("before", before)):
            if value is None:
                continue
            decoded = _decode_cursor(value)
            if decoded is None:
                return _bad_request("BadPage", "The page cursor is malformed.")
            if decoded[0] != direction:
                return _bad_request("BadPage", f"A {decoded[0]} cursor cannot be used as page[{direction}].")
            if decoded[1] not in ids:
                return _bad_request("BadPage", "The page boundary changed between calls.")
            position = ids.index(decoded[1])
            start, end = (position + 1, min(position + 1 + limit, len(people))) if direction == "after" else \
                (max(0, position - limit), position)
        chosen = people[start:end]
        data = []
        for person in chosen:
            record = self.record(person)
            names = [*LIST_BASE_FIELDS, *optional]
            hidden = [name for name in names if name in restricted and name != "employeeId"]
            item = {name: None if name in hidden else record[name] for name in names}
            item["_restrictedFields"] = hidden
            data.append(item)
        next_cursor = encode_cursor("after", ids[end - 1]) if chosen and end < len(people) else None
        prev_cursor = encode_cursor("before", ids[start]) if chosen and start > 0 else None
        links: dict[str, Any] = {"self": {"href": self._href(params)}}
        kept = [(key, value) for key, value in params if key not in ("page[after]", "page[before]")]
        if next_cursor:
            links["next"] = {"href": self._href([*kept, ("page[after]", next_cursor)])}
        if prev_cursor:
            links["prev"] = {"href": self._href([*kept, ("page[before]", prev_cursor)])}
        return Answer.json(200, {"data": data, "meta": {"total": len(people), "page": {
            "limit": limit, "nextCursor": next_cursor, "prevCursor": prev_cursor}}, "_links": links})

    def _href(self, params: list[tuple[str, str]]) -> str:
        return f"{self.base_url}/api/v1/employees" + (f"?{urlencode(params)}" if params else "")

    def _filtered(self, people: list[Person], params: list[tuple[str, str]], restricted: set[str]) -> list[Person]:
        ids: set[int] | None = None
        for key, value in params:
            if key in ("filter[ids][]", "filter[ids]"):
                try:
                    found = {int(part) for part in value.split(",") if part.strip()}
                except ValueError:
                    raise ValueError("filter[ids] takes employee ids (integers)") from None
                ids = found if ids is None else ids | found
        if ids is not None:
            people = [person for person in people if person.id in ids]
        for key, value in params:
            if not key.startswith("filter[") or key.startswith("filter[ids]"):
                continue
            name = key.removeprefix("filter[").removesuffix("]")
            if name not in ("firstName", "lastName", "jobTitleName", "status"):
                raise ValueError(f"unknown filter {name!r}")
            if name == "status" and value not in ("active", "inactive"):
                raise ValueError("filter[status] is active or inactive")
            if name in restricted:
                return []  # the caller may not read the filtered field: nobody matches, so nothing leaks
            needle = value.lower()
            if name == "status":
                people = [person for person in people if self.record(person)["status"].lower() == needle]
            else:
                people = [person for person in people if needle in (self.record(person)[name] or "").lower()]
        return people

    def _sorted(self, people: list[Person], sort: str, restricted: set[str]) -> list[Person]:
        rules = [rule.strip() for rule in sort.split(",") if rule.strip()] or ["employeeId"]
        for rule in reversed(rules):
            name, descending = rule.removeprefix("-"), rule.startswith("-")
            if name not in SORTABLE_FIELDS:
                raise ValueError(f"cannot sort by {name!r}")
            if name in restricted:
                return []
            if name == "employeeId":
                people = sorted(people, key=lambda person: person.id, reverse=descending)
                continue
            # Nulls first ascending, last descending (as documented).
            people = sorted(people, key=lambda person, n=name: (self.record(person)[n] is not None,
                                                                 self.record(person)[n] or ""), reverse=descending)
        return people

    def _get_employee(self, employee_id: int, params: dict[str, str], wants_json: bool) -> Answer:
        if employee_id == 0:
            employee_id = self.workforce.first_id  # the API key's own employee
        person = self.workforce.by_id(employee_id)
        if person is None:
            return _empty(404, "Employee not found")
        names = [name.strip() for name in params.get("fields", "firstName,lastName").split(",") if name.strip()]
        if len(names) > MAX_GET_FIELDS:
            return _empty(400, f"At most {MAX_GET_FIELDS} fields may be requested")
        record = self.record(person)
        restricted = set(self.restricted)
        answer: dict[str, Any] = {"id": str(person.id)}
        for name in names:
            source = _FIELD_BY_ID.get(name, name)
            if source in record and source not in restricted and source != "employeeId":
                answer[name] = record[source]  # restricted fields are omitted, unknown ones ignored
        if wants_json:
            return Answer.json(200, answer)
        root = ElementTree.Element("employee", id=answer.pop("id"))
        for name, value in answer.items():
            ElementTree.SubElement(root, "field", id=name).text = "" if value is None else str(value)
        return _xml(root)

    def _changed(self, params: dict[str, str], wants_json: bool) -> Answer:
        try:
            since = _parse_since(params["since"])
        except (KeyError, ValueError):
            return _empty(400, "The since parameter is missing or is not an ISO 8601 date")
        kind = params.get("type", "all").lower()
        if kind not in ("inserted", "updated", "deleted", "all"):
            return _empty(400, "type is inserted, updated, deleted or all")
        with self._lock:
            departed, inserted = dict(self._departed_at), dict(self._inserted_at)
        changes: list[tuple[int, str, datetime]] = []
        for person in self.workforce.people():
            moment = max(person.updated_at, inserted.get(person.index, person.updated_at))
            action = "Inserted" if inserted.get(person.index) == moment else "Updated"
            if moment >= since:
                changes.append((person.id, action, moment))
        changes += [(self.workforce.first_id + index, "Deleted", moment)
                    for index, moment in departed.items() if moment >= since]
        changes = [change for change in changes if kind == "all" or change[1].lower() == kind]
        changes.sort()
        latest = _iso(max(moment for _, _, moment in changes)) if changes else None
        employees = {str(employee_id): {"id": str(employee_id), "action": action, "lastChanged": _iso(moment)}
                     for employee_id, action, moment in changes}
        if wants_json:
            return Answer.json(200, {"latest": latest, "employees": employees})
        root = ElementTree.Element("employees", latest=latest or "")
        for item in employees.values():
            ElementTree.SubElement(root, "employee", item)
        return _xml(root)

    def _fields(self, wants_json: bool) -> Answer:
        fields = []
        for field_id, name, kind, alias in META_FIELDS:
            item: dict[str, Any] = {"id": field_id, "name": name, "type": kind}
            if alias:
                item["alias"] = alias
            fields.append(item)
        if wants_json:
            return Answer.json(200, fields)
        root = ElementTree.Element("fields")
        for item in fields:
            attributes = {"id": str(item["id"]), "type": item["type"]}
            if "alias" in item:
                attributes["alias"] = item["alias"]
            ElementTree.SubElement(root, "field", attributes).text = item["name"]
        return _xml(root)

    # --- control endpoints ---

    def _control_reply(self, route: str, reply: dict[str, Any]) -> Answer:
        return Answer.json(200, reply if route == "hire" else {})

    def _control_extra(self, route: str, document: dict[str, Any]) -> Answer | None:
        if route != "restrict":
            return None
        self.restricted = {str(name) for name in document["fields"]}
        return Answer.json(200, {})


# --- command line -------------------------------------------------------------------------------------------------


def _serve(args: argparse.Namespace) -> int:
    api_key = os.environ.get(args.api_key_env) or DEFAULT_API_KEY
    restricted = [name.strip() for name in (args.restricted or "").split(",") if name.strip()]
    standin = BambooHRStandIn(Workforce(args.employees, domain=args.domain), api_key=api_key, port=args.port,
                              restricted=restricted, throttle_status=args.throttle_status,
                              list_custom_fields=args.list_custom_fields)
    source = f"${args.api_key_env}" if os.environ.get(args.api_key_env) else "the default key"
    return serve_standin(standin, args, f"BambooHR stand-in on {{base_url}} ({args.employees} employees, API key "
                                        f"from {source}); Ctrl-C stops it")


def _parser() -> argparse.ArgumentParser:
    parser, serve = command_line("python -m local.bamboohr", "Local stand-in of the BambooHR API", port=DEFAULT_PORT,
                                 employees=50, seed=False, serve=_serve)
    serve.add_argument("--api-key-env", default=DEFAULT_API_KEY_ENV,
                       help=f"environment variable holding the API key (default {DEFAULT_API_KEY_ENV}; "
                            f"unset: {DEFAULT_API_KEY})")
    serve.add_argument("--restricted", help="comma-separated field names the API key may not read")
    serve.add_argument("--throttle-status", type=int, choices=(429, 503), default=429,
                       help="the rate-limit answer: 429 (since 2026-09-16, the default) or 503 (before)")
    serve.add_argument("--list-custom-fields", action="store_true",
                       help="let List Employees return custom fields and supervisorEmail (undocumented)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    return run_command(_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
