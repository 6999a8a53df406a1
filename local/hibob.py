"""A local stand-in of HiBob's public API (Bob) serving the employees of a ``Workforce`` (local/hrms_people.py)
and the custom tables the write-back fills.

Standard library HTTP server on 127.0.0.1 (keep-alive, one thread per connection). Point the HiBob connector at
``base_url`` (the origin: the paths below start with ``/v1``).

API endpoints (every one needs ``Authorization: Basic base64(SERVICE_USER_ID:TOKEN)`` of the stand-in's service
user; missing or wrong -> 401):

- ``POST /v1/people/search`` with a JSON object ``{"fields": [field ids], "showInactive": bool, "humanReadable":
  "REPLACE" | "APPEND" | "", "filters": [...]}`` -> 200 ``{"employees": [...]}``: every matching employee in ONE
  answer (HiBob has no pagination here), in id order. As HiBob documents:
  - ``showInactive`` (default false) leaves out employees whose ``internal.status`` is ``Inactive``; departed
    employees (``Workforce.depart``) are gone altogether;
  - ``fields`` (at most 400, else 400): ids the service user may not read (``unreadable``) and unknown ids are
    silently left out of every employee; without ``fields``, the readable non-custom fields;
  - ``filters``: at most one ``{"fieldPath": "root.id" | "root.email", "operator": "equals", "values": [...]}``
    (anything else -> 400);
  - each field appears under its slash key (``"/work/department"``) and in nested category objects
    (``{"work": {"department": ...}}``; root fields at the top level: ``"id"``), as HiBob's read contract says
    (``key_style`` "slash" or "nested" serves only one of the two, to prove a client copes);
  - values: machine values by default; ``humanReadable: "REPLACE"`` swaps in the human-readable ones (list item
    ids -> names, numbers -> strings, an employee reference -> the employee's display name; null stays null);
    ``"APPEND"`` keeps the machine values and adds a ``"humanReadable"`` object laid out the same way with the
    human-readable values of the non-null fields (HiBob's docs do not show APPEND's layout: this is an assumption);
  - fields served: ``root.id`` (the Workforce id as a string), ``root.email``, ``root.firstName``,
    ``root.surname``, ``root.displayName``, ``work.title`` and ``work.department`` (list fields: item id / name),
    ``work.site`` (site name), ``work.siteId`` (number), ``work.reportsTo`` (employee-reference: the manager's id,
    human-readable: their display name; null for the first employee), ``work.startDate`` (YYYY-MM-DD),
    ``internal.status`` (``Active`` / ``Inactive``), ``internal.lifecycleStatus`` (list: ``hired`` / ``employed``
    / ``leave`` / ``terminated``, human-readable ``Hired`` / ``Employed`` / ``On leave`` / ``Terminated``),
    ``custom.competencies`` (text) and ``custom.reviewRating`` (number) in the custom category.
  Limited by ``limit_rate`` (HiBob documents 50 a minute for search): beyond it 429 with ``X-RateLimit-Limit``,
  ``X-RateLimit-Remaining: 0`` and ``X-RateLimit-Reset`` (unix seconds) and no ``Retry-After`` (none documented);
  successful searches carry the same three headers while a limit is set.
- ``GET /v1/company/people/fields`` -> 200 ``[{"id", "category", "categoryId", "categoryDisplayName", "name",
  "description", "jsonPath", "type", "typeData", "historical"}, ...]``: every field, readable or not (metadata
  needs no permission, as HiBob documents).
- Custom tables (the write-back's target; shapes from HiBob's reference: "Read metadata of custom tables defined",
  "Read all entries of the given custom table", "Create new custom table entry"). The stand-in's tables are
  ``tables`` (each a ``CustomTable`` of ``TableColumn`` items; default ``LEARNING_TABLE``: id ``learning`` with
  the columns ``column_title`` (text, mandatory), ``column_date`` (date), ``column_score`` and ``column_hours``
  (number) and ``column_marker`` (text)); no employee has an entry until one is made.
  - ``GET /v1/people/custom-tables/metadata`` -> 200 ``{"tables": [{"id", "name", "category", "description",
    "columns": [{"id", "name", "description", "mandatory", "type"}]}]}``; ``GET .../metadata/{tableId}`` -> that
    one table (404 for an unknown one).
  - ``GET /v1/people/custom-tables/{employeeId}/{tableId}`` -> 200 ``{"values": [entry, ...]}``, oldest first; an
    entry is ``{"id": <number>, <column id>: <value or null>, ...}`` (every column of the table).
  - ``POST`` to the same path with ``{"values": {<column id>: <value>}}`` makes an entry -> 200 with the new entry
    (its ``id`` a number). HiBob's reference documents no body for this answer: ``answer_created_entry=False``
    answers 200 with an empty body, so a client that relies on the body can be tested against that too. An unknown
    column, a mandatory column without a value, a value the column's type refuses (text: a string; number: a
    number; date: ``YYYY-MM-DD``; multi-list: a list; currency: ``{"value", "currency"}``) or a body without a
    ``values`` object -> 400 naming every problem, nothing written.
  - An unknown or departed employee, or an unknown table -> 404; another method -> 405.
  ``table_entries(employee_id, table_id="learning")`` reads what was written. Faults apply as to every API path;
  the rate limit counts searches only.
- Anything else -> 404 (405 for a known path with another method). Error bodies are ``{"error": <status phrase>,
  "message": <text>}`` (HiBob does not document its error body; clients should not rely on it). A body that is
  not a JSON object -> 400.

Faults (on API requests only, never on the control endpoints): ``drop_next(count)`` reads the next requests and
closes the connection without an answer (logged with status 0); then authentication; then ``fail_next(status,
count=, retry_after=, path_contains=)`` answers the next matching requests with ``status`` and the error body
(``Retry-After`` only when given; a fractional value is sent as is); then the rate limit. ``clear_faults()``
forgets pending faults and drops and lifts the rate limit. Observability: ``requests_log`` (method, path with query,
status) of every API request and ``requests_count``.

Control endpoints (no auth, for a stand-in in another process): ``POST /_standin/fail {"status", "count"?,
"retry_after"?, "path_contains"?}``, ``DELETE /_standin/fail`` (clear_faults), ``POST /_standin/drop {"count"}``,
``POST /_standin/rate {"per_minute": n | null}``, ``POST /_standin/change {"indexes": [...]}`` and ``POST
/_standin/depart {"indexes": [...]}`` (the Workforce's change / depart), ``POST /_standin/hire {"count"}`` -> 201
``{"indexes"}``, ``GET /_standin/requests`` -> ``{"requests": [[method, path, status], ...]}``. A malformed body
-> 400.

Command line: ``python -m local.hibob serve --port 7096 --employees 300 [--domain D] [--seed S]
[--unreadable FIELD ...] [--per-minute 50] [--credential-env HIBOB_STANDIN_CREDENTIAL]``; the credential is read
from the environment variable the option names (the connector's JSON: ``{"service_user_id", "token"}``), never
from argv; without it the defaults below.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import hmac
import json
import math
import os
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from http import HTTPStatus
from typing import Any
from urllib.parse import urlsplit

from local.hrms_people import TITLES, Person, Workforce
from local.hrms_standin import Answer, EnvCredential, HrmsStandIn, command_line, run_command, serve_standin

DEFAULT_PORT = 7096
DEFAULT_SERVICE_USER_ID = "SERVICE-USER-LOCAL"
DEFAULT_TOKEN = "hibob-local-token"  # noqa: S105 - a local stand-in's well-known default
DEFAULT_CREDENTIAL_ENV = "HIBOB_STANDIN_CREDENTIAL"
DOCUMENTED_SEARCH_PER_MINUTE = 50
MAX_FIELDS = 400
SEARCH_PATH = "/v1/people/search"
FIELDS_PATH = "/v1/company/people/fields"
CUSTOM_TABLES_PREFIX = "/v1/people/custom-tables/"
TABLES_METADATA_PATH = CUSTOM_TABLES_PREFIX + "metadata"
KEY_STYLES = ("both", "slash", "nested")
HUMAN_READABLE_MODES = ("", "REPLACE", "APPEND")
TITLE_LIST_BASE = 200  # list item ids of job titles: 200 + position in TITLES
LIFECYCLE = {"onboarding": ("hired", "Hired"), "active": ("employed", "Employed"), "leave": ("leave", "On leave"),
             "inactive": ("terminated", "Terminated")}


# --- the fields Bob knows -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BobField:
    """One employee field: its metadata and how a Person's machine and human-readable values are made."""

    id: str
    category: str
    category_name: str
    name: str
    type: str
    machine: Callable[[Person, Workforce], Any]
    human: Callable[[Person, Workforce], Any] | None = None  # None: the machine value, numbers as strings
    historical: bool = False
    custom: bool = False

    @property
    def json_path(self) -> str:
        return self.id.removeprefix("root.")

    @property
    def slash_key(self) -> str:
        return "/" + self.id.replace(".", "/")

    def human_value(self, person: Person, workforce: Workforce) -> Any:
        value = self.machine(person, workforce)
        if value is None:
            return None
        if self.human is not None:
            return self.human(person, workforce)
        if isinstance(value, bool):
            return "Yes" if value else "No"
        return str(value) if isinstance(value, int | float) else value

    def metadata(self) -> dict[str, Any]:
        return {"id": self.id, "category": self.category, "categoryId": self.category,
                "categoryDisplayName": self.category_name, "name": self.name, "description": None,
                "jsonPath": self.json_path, "type": self.type,
                "typeData": {"listId": self.id.split(".")[-1]} if self.type == "list" else {},
                "historical": self.historical}


def _manager(person: Person, workforce: Workforce) -> Person | None:
    return None if person.manager_index is None else workforce.person(person.manager_index)


def _display_name(person: Person) -> str:
    return f"{person.first_name} {person.last_name}"


FIELDS: tuple[BobField, ...] = (
    BobField("root.id", "root", "Basic info", "Id", "text", lambda p, w: str(p.id)),
    BobField("root.email", "root", "Basic info", "Email", "text", lambda p, w: p.email),
    BobField("root.firstName", "root", "Basic info", "First name", "text", lambda p, w: p.first_name),
    BobField("root.surname", "root", "Basic info", "Last name", "text", lambda p, w: p.last_name),
    BobField("root.displayName", "root", "Basic info", "Display name", "text", lambda p, w: _display_name(p)),
    BobField("work.title", "work", "Work", "Job title", "list",
             lambda p, w: str(TITLE_LIST_BASE + TITLES.index(p.title)), lambda p, w: p.title, historical=True),
    BobField("work.department", "work", "Work", "Department", "list", lambda p, w: str(p.department_id),
             lambda p, w: p.department, historical=True),
    BobField("work.site", "work", "Work", "Site", "text", lambda p, w: p.office, historical=True),
    BobField("work.siteId", "work", "Work", "Site id", "number", lambda p, w: p.office_id, historical=True),
    BobField("work.reportsTo", "work", "Work", "Reports to", "employee-reference",
             lambda p, w: None if (m := _manager(p, w)) is None else str(m.id),
             lambda p, w: None if (m := _manager(p, w)) is None else _display_name(m), historical=True),
    BobField("work.startDate", "work", "Work", "Start date", "date", lambda p, w: p.hire_date),
    BobField("internal.status", "internal", "Lifecycle", "Status", "text",
             lambda p, w: "Inactive" if p.status == "inactive" else "Active"),
    BobField("internal.lifecycleStatus", "internal", "Lifecycle", "Lifecycle status", "list",
             lambda p, w: LIFECYCLE[p.status][0], lambda p, w: LIFECYCLE[p.status][1]),
    BobField("custom.competencies", "custom", "Coaching", "Competencies", "text",
             lambda p, w: p.competencies, custom=True),
    BobField("custom.reviewRating", "custom", "Coaching", "Review rating", "number",
             lambda p, w: p.review_rating, custom=True),
)
FIELDS_BY_ID = {bob_field.id: bob_field for bob_field in FIELDS}


# --- custom tables ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TableColumn:
    """One column of a custom table. ``type``: text, text-area, number, date, list, multi-list, hierarchy-list,
    currency, employee-reference or document (the types HiBob documents); ``mandatory`` columns must have a value
    when an entry is made."""

    id: str
    name: str
    type: str = "text"
    mandatory: bool = False
    description: str | None = None

    def metadata(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "description": self.description, "mandatory": self.mandatory,
                "type": self.type}

    def refuses(self, value: Any) -> str | None:
        """Why the column does not take ``value`` (None: it does; null always does, unless mandatory)."""
        if value is None:
            return None
        if self.type in ("text", "text-area", "list", "hierarchy-list", "employee-reference", "document"):
            return None if isinstance(value, str) else "must be a string"
        if self.type == "number":
            return None if isinstance(value, int | float) and not isinstance(value, bool) else "must be a number"
        if self.type == "date":
            if isinstance(value, str) and len(value) == 10:
                try:
                    date.fromisoformat(value)
                    return None
                except ValueError:
                    pass
            return "must be a date (YYYY-MM-DD)"
        if self.type == "multi-list":
            ok = isinstance(value, list) and all(isinstance(item, str) for item in value)
            return None if ok else "must be a list of list item ids"
        if self.type == "currency":
            ok = isinstance(value, dict) and isinstance(value.get("currency"), str) and \
                isinstance(value.get("value"), int | float) and not isinstance(value.get("value"), bool)
            return None if ok else 'must be {"value": <number>, "currency": <code>}'
        return None


@dataclass(frozen=True)
class CustomTable:
    """A custom table as ``GET /v1/people/custom-tables/metadata`` describes it."""

    id: str
    name: str
    columns: tuple[TableColumn, ...]
    category: str = "custom"
    description: str | None = None

    def metadata(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "category": self.category, "description": self.description,
                "columns": [column.metadata() for column in self.columns]}


LEARNING_TABLE = CustomTable("learning", "Learning", (
    TableColumn("column_title", "Programme", "text", mandatory=True),
    TableColumn("column_date", "Completed on", "date"),
    TableColumn("column_score", "Score", "number"),
    TableColumn("column_hours", "Hours", "number"),
    TableColumn("column_marker", "Reference", "text"),
), description="Completed programmes and assessments")


# --- answers ----------------------------------------------------------------------------------------------------


class _Refused(Exception):
    def __init__(self, status: int, message: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.headers = status, message, dict(headers or {})


def _error(status: int, message: str, headers: Mapping[str, str] | None = None) -> Answer:
    return Answer.json(status, {"error": HTTPStatus(status).phrase, "message": message}, headers)


def _place(document: dict[str, Any], bob_field: BobField, value: Any, key_style: str) -> None:
    if key_style in ("both", "slash"):
        document[bob_field.slash_key] = value
    if key_style in ("both", "nested"):
        *parents, leaf = bob_field.json_path.split(".")
        node = document
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value


# --- the stand-in -------------------------------------------------------------------------------------------------


class HiBobStandIn(HrmsStandIn):
    """HiBob's people search and fields metadata on http://127.0.0.1; see the module docstring."""

    thread_name = "HiBob stand-in"
    log_name = "hibob stand-in"

    def __init__(self, workforce: Workforce, *, service_user_id: str = DEFAULT_SERVICE_USER_ID,
                 token: str = DEFAULT_TOKEN, unreadable: Iterable[str] = (), key_style: str = "both",
                 per_minute: int | None = None, port: int = 0, tables: Iterable[CustomTable] = (LEARNING_TABLE,),
                 answer_created_entry: bool = True) -> None:
        if key_style not in KEY_STYLES:
            raise ValueError(f"key_style must be one of {KEY_STYLES}")
        super().__init__(port=port)
        self.tables = {table.id: table for table in tables}
        self.answer_created_entry = answer_created_entry
        self._entries: dict[tuple[str, str], dict[int, dict[str, Any]]] = {}  # (employee id, table id) -> entries
        self._next_entry_id = 1
        self.workforce = workforce
        self.service_user_id = service_user_id
        self.token = token
        self.unreadable = frozenset(unreadable)
        self.key_style = key_style
        self.limit_rate(per_minute)  # searches only: HiBob documents its limit for the search

    @property
    def credential(self) -> str:
        """The connector's credential JSON for this stand-in's service user."""
        return json.dumps({"service_user_id": self.service_user_id, "token": self.token})

    # HTTP

    def _api_answer(self, method: str, target: str, headers: Mapping[str, str], body: bytes) -> Answer:
        try:
            return self._api(method, urlsplit(target).path, headers, body)
        except _Refused as refused:
            return _error(refused.status, refused.message, refused.headers)

    def _failure_answer(self) -> Answer:
        return _error(500, "stand-in failure")

    def _api(self, method: str, path: str, headers: Mapping[str, str], body: bytes) -> Answer:
        custom_tables = path.startswith(CUSTOM_TABLES_PREFIX)
        if path not in (SEARCH_PATH, FIELDS_PATH) and not custom_tables:
            raise _Refused(404, f"No endpoint {method} {path}")
        self._authenticate(headers.get("Authorization") or "")
        self._inject_fault(path)
        if custom_tables:
            return self._custom_tables(method, path.removeprefix(CUSTOM_TABLES_PREFIX).strip("/").split("/"), body)
        if path == FIELDS_PATH:
            if method != "GET":
                raise _Refused(405, f"{method} is not allowed on {path}")
            return Answer.json(200, [bob_field.metadata() for bob_field in FIELDS])
        if method != "POST":
            raise _Refused(405, f"{method} is not allowed on {path}")
        limit_headers = self._admit_search()
        return Answer.json(200, {"employees": self._search(body)}, limit_headers)

    # custom tables

    def table_entries(self, employee_id: int | str, table_id: str = LEARNING_TABLE.id) -> list[dict[str, Any]]:
        """The employee's entries of the custom table, as ``GET .../custom-tables/{employee}/{table}`` lists them."""
        with self._lock:
            entries = self._entries.get((str(employee_id), table_id), {})
            return [dict(entry) for _, entry in sorted(entries.items())]

    def _custom_tables(self, method: str, parts: list[str], body: bytes) -> Answer:
        path = CUSTOM_TABLES_PREFIX + "/".join(parts)
        if parts[0] == "metadata" and len(parts) <= 2:
            if method != "GET":
                raise _Refused(405, f"{method} is not allowed on {path}")
            if len(parts) == 1:
                return Answer.json(200, {"tables": [table.metadata() for table in self.tables.values()]})
            return Answer.json(200, self._table(parts[1]).metadata())
        if len(parts) != 2:
            raise _Refused(404, f"No endpoint {method} {path}")
        if method not in ("GET", "POST"):
            raise _Refused(405, f"{method} is not allowed on {path}")
        employee_id, table = parts[0], self._table(parts[1])
        person = self.workforce.by_id(int(employee_id)) if employee_id.isdigit() else None
        if person is None:
            raise _Refused(404, f"Employee {employee_id} not found")
        if method == "GET":
            return Answer.json(200, {"values": self.table_entries(person.id, table.id)})
        return self._create_entry(str(person.id), table, body)

    def _table(self, table_id: str) -> CustomTable:
        table = self.tables.get(table_id)
        if table is None:
            raise _Refused(404, f"Custom table {table_id} not found")
        return table

    def _create_entry(self, employee_id: str, table: CustomTable, body: bytes) -> Answer:
        try:
            request = json.loads(body or b"null")
        except ValueError:
            raise _Refused(400, "The request body is not JSON") from None
        values = request.get("values") if isinstance(request, dict) else None
        if not isinstance(values, dict):
            raise _Refused(400, 'The request body must be {"values": {<column id>: <value>, ...}}')
        columns = {column.id: column for column in table.columns}
        problems = [f"unknown column {key}" for key in values if key not in columns]
        problems += [f"{column.id} ({column.name}) is mandatory" for column in table.columns
                     if column.mandatory and values.get(column.id) is None]
        problems += [f"{key} ({columns[key].name}) {refused}" for key, value in values.items()
                     if key in columns and (refused := columns[key].refuses(value))]
        if problems:
            raise _Refused(400, f"Table {table.id}: " + "; ".join(problems))
        with self._lock:
            entry_id = self._next_entry_id
            self._next_entry_id += 1
            entry = {"id": entry_id, **{column.id: values.get(column.id) for column in table.columns}}
            self._entries.setdefault((employee_id, table.id), {})[entry_id] = entry
        return Answer.json(200, dict(entry)) if self.answer_created_entry else Answer(200, b"", "application/json")

    def _authenticate(self, authorization: str) -> None:
        scheme, _, encoded = authorization.strip().partition(" ")
        try:
            user, _, token = base64.b64decode(encoded.strip(), validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            user, token = "", ""
        valid = scheme.lower() == "basic" and hmac.compare_digest(user.encode(), self.service_user_id.encode()) \
            and hmac.compare_digest(token.encode(), self.token.encode())
        if not valid:
            raise _Refused(401, "The service user ID or token is missing or invalid")

    def _inject_fault(self, path: str) -> None:
        fault = self._plan.take_fault(path)
        if fault is not None:
            raise _Refused(fault.status, f"{HTTPStatus(fault.status).phrase} (a fault injected by the stand-in)",
                           fault.retry_after_headers())

    def _admit_search(self) -> dict[str, str]:
        """Count a search against the per-minute limit: its rate headers, or HiBob's 429."""
        throttle = self._plan.admit()
        if throttle is None:
            return {}
        headers = {"X-RateLimit-Limit": str(throttle.limit),
                   "X-RateLimit-Remaining": str(throttle.limit - throttle.counted),
                   "X-RateLimit-Reset": str(math.ceil(time.time() + throttle.reset_in))}
        if not throttle.admitted:
            raise _Refused(429, f"Too many requests: at most {throttle.limit} searches a minute", headers)
        return headers

    def _search(self, body: bytes) -> list[dict[str, Any]]:
        try:
            request = json.loads(body or b"{}")
        except ValueError:
            raise _Refused(400, "The request body is not JSON") from None
        if not isinstance(request, dict):
            raise _Refused(400, "The request body must be a JSON object")
        requested = request.get("fields")
        if requested is None or requested == []:
            chosen = [bob_field for bob_field in FIELDS if not bob_field.custom and bob_field.id not in self.unreadable]
        elif isinstance(requested, list) and all(isinstance(name, str) for name in requested):
            if len(requested) > MAX_FIELDS:
                raise _Refused(400, f"At most {MAX_FIELDS} fields can be requested")
            # Unknown ids and fields the service user may not read are left out without a word, as in Bob.
            chosen = [FIELDS_BY_ID[name] for name in dict.fromkeys(requested)
                      if name in FIELDS_BY_ID and name not in self.unreadable]
        else:
            raise _Refused(400, "fields must be a list of field ids")
        show_inactive = request.get("showInactive", False)
        mode = request.get("humanReadable") or ""
        if not isinstance(show_inactive, bool) or mode not in HUMAN_READABLE_MODES:
            raise _Refused(400, "showInactive must be a boolean and humanReadable REPLACE, APPEND or empty")
        wanted = self._filter(request.get("filters"))
        employees = []
        for person in self.workforce.people():
            if person.status == "inactive" and not show_inactive:
                continue
            if wanted is not None and not wanted(person):
                continue
            employees.append(self._employee(person, chosen, mode))
        return employees

    def _filter(self, filters: Any) -> Callable[[Person], bool] | None:
        if filters is None or filters == []:
            return None
        if not isinstance(filters, list) or len(filters) != 1 or not isinstance(filters[0], dict):
            raise _Refused(400, "filters takes at most one filter object")
        condition = filters[0]
        path, operator, values = condition.get("fieldPath"), condition.get("operator"), condition.get("values")
        if path not in ("root.id", "root.email") or operator != "equals" or not isinstance(values, list):
            raise _Refused(400, "Only root.id or root.email with the equals operator and a list of values")
        accepted = {str(value).lower() for value in values}
        if path == "root.id":
            return lambda person: str(person.id) in accepted
        return lambda person: person.email.lower() in accepted

    def _employee(self, person: Person, chosen: Sequence[BobField], mode: str) -> dict[str, Any]:
        document: dict[str, Any] = {}
        human: dict[str, Any] = {}
        for bob_field in chosen:
            machine = bob_field.machine(person, self.workforce)
            shown = bob_field.human_value(person, self.workforce) if mode == "REPLACE" else machine
            _place(document, bob_field, shown, self.key_style)
            if mode == "APPEND" and machine is not None:
                _place(human, bob_field, bob_field.human_value(person, self.workforce), self.key_style)
        if mode == "APPEND":
            document["humanReadable"] = human
        return document


# --- command line -------------------------------------------------------------------------------------------------


_CREDENTIAL = EnvCredential(DEFAULT_CREDENTIAL_ENV, ("service_user_id", "token"),
                            (DEFAULT_SERVICE_USER_ID, DEFAULT_TOKEN))


def _serve(args: argparse.Namespace) -> int:
    try:
        service_user_id, token = _CREDENTIAL.read(args.credential_env)
    except ValueError as error:
        print(f"cannot read the credential: {error}", file=sys.stderr)
        return 2
    workforce = Workforce(args.employees, domain=args.domain, seed=args.seed)
    standin = HiBobStandIn(workforce, service_user_id=service_user_id, token=token, unreadable=args.unreadable,
                           per_minute=args.per_minute or None, port=args.port)
    source = f"${args.credential_env}" if os.environ.get(args.credential_env) else "the defaults of local/hibob.py"
    return serve_standin(standin, args,
                         f"HiBob stand-in on {{base_url}} with {args.employees} employees; Ctrl-C stops it\n"
                         f"  connector base URL {{base_url}}, service user {service_user_id} "
                         f"(credential from {source})")


def _parser() -> argparse.ArgumentParser:
    parser, serve = command_line("python -m local.hibob", "Local stand-in of HiBob's API", port=DEFAULT_PORT,
                                 employees=50, serve=_serve)
    serve.add_argument("--unreadable", action="append", default=[], metavar="FIELD",
                       help="a field id the service user may not read (repeatable), e.g. work.title")
    serve.add_argument("--per-minute", type=int, default=DOCUMENTED_SEARCH_PER_MINUTE,
                       help="searches allowed a minute (0: no limit; HiBob documents 50)")
    _CREDENTIAL.add_option(serve)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    return run_command(_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
