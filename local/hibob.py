"""A local stand-in of HiBob's public API (Bob) serving the employees of a ``Workforce`` (local/hrms_people.py).

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
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from local.hrms_people import TITLES, Person, Workforce
from local.serving import ServedOnAThread, serve_in_foreground, write_answer

DEFAULT_PORT = 7096
DEFAULT_SERVICE_USER_ID = "SERVICE-USER-LOCAL"
DEFAULT_TOKEN = "hibob-local-token"  # noqa: S105 - a local stand-in's well-known default
DEFAULT_CREDENTIAL_ENV = "HIBOB_STANDIN_CREDENTIAL"
DOCUMENTED_SEARCH_PER_MINUTE = 50
MAX_FIELDS = 400
SEARCH_PATH = "/v1/people/search"
FIELDS_PATH = "/v1/company/people/fields"
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


# --- answers ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Answer:
    status: int
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)
    content_type: str = "application/json"


@dataclass
class _Fault:
    status: int
    remaining: int
    retry_after: float | None
    path_contains: str | None


class _Refused(Exception):
    def __init__(self, status: int, message: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.headers = status, message, dict(headers or {})


def _json(status: int, payload: Any, headers: Mapping[str, str] | None = None) -> _Answer:
    return _Answer(status, json.dumps(payload).encode(), dict(headers or {}))


def _error(status: int, message: str, headers: Mapping[str, str] | None = None) -> _Answer:
    return _json(status, {"error": HTTPStatus(status).phrase, "message": message}, headers)


def _retry_after_header(seconds: float) -> str:
    return str(int(seconds)) if float(seconds).is_integer() else f"{seconds:g}"


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


class HiBobStandIn(ServedOnAThread):
    """HiBob's people search and fields metadata on http://127.0.0.1; see the module docstring."""

    thread_name = "HiBob stand-in"

    def __init__(self, workforce: Workforce, *, service_user_id: str = DEFAULT_SERVICE_USER_ID,
                 token: str = DEFAULT_TOKEN, unreadable: Iterable[str] = (), key_style: str = "both",
                 per_minute: int | None = None, port: int = 0) -> None:
        if key_style not in KEY_STYLES:
            raise ValueError(f"key_style must be one of {KEY_STYLES}")
        self.workforce = workforce
        self.service_user_id = service_user_id
        self.token = token
        self.unreadable = frozenset(unreadable)
        self.key_style = key_style
        self.port = port
        self.requests_log: list[tuple[str, str, int]] = []
        self._lock = threading.Lock()
        self._faults: list[_Fault] = []
        self._drops = 0
        self._per_minute: int | None = None
        self._searches: deque[float] = deque()  # monotonic times of the admitted searches of the last minute
        self._log_requests = False
        self.limit_rate(per_minute)

    def _make_server(self) -> ThreadingHTTPServer:
        server = _Server(("127.0.0.1", self.port), _Handler)
        server.standin = self
        return server

    @property
    def requests_count(self) -> int:
        with self._lock:
            return len(self.requests_log)

    @property
    def credential(self) -> str:
        """The connector's credential JSON for this stand-in's service user."""
        return json.dumps({"service_user_id": self.service_user_id, "token": self.token})

    # faults and limits

    def fail_next(self, status: int, *, count: int = 1, retry_after: float | None = None,
                  path_contains: str | None = None) -> None:
        """Answer the next ``count`` API requests (whose path contains ``path_contains``) with ``status``."""
        HTTPStatus(status)  # a ValueError for a status that does not exist
        if count < 1:
            raise ValueError("count must be at least 1")
        with self._lock:
            self._faults.append(_Fault(status, count, retry_after, path_contains))

    def drop_next(self, count: int = 1) -> None:
        """Read the next ``count`` API requests, then close their connections without an answer."""
        if count < 1:
            raise ValueError("count must be at least 1")
        with self._lock:
            self._drops += count

    def limit_rate(self, per_minute: int | None) -> None:
        """Answer searches beyond ``per_minute`` within the last minute with HiBob's 429; None lifts the limit."""
        if per_minute is not None and per_minute < 1:
            raise ValueError("per_minute must be at least 1 (or None)")
        with self._lock:
            self._per_minute = per_minute
            self._searches.clear()

    def clear_faults(self) -> None:
        """Forget pending faults and drops and lift the rate limit."""
        with self._lock:
            self._faults.clear()
            self._drops = 0
            self._per_minute = None
            self._searches.clear()

    # the workforce, for tests and the control endpoints

    def change(self, indexes: Iterable[int]) -> None:
        self.workforce.change(list(indexes))

    def depart(self, indexes: Iterable[int]) -> None:
        self.workforce.depart(list(indexes))

    def hire(self, count: int) -> list[int]:
        return self.workforce.hire(count)

    # HTTP

    def _handle(self, method: str, target: str, headers: Mapping[str, str], body: bytes) -> _Answer | None:
        parts = urlsplit(target)
        if parts.path == "/_standin" or parts.path.startswith("/_standin/"):
            return self._control(method, parts.path.removeprefix("/_standin").strip("/"), body)
        with self._lock:
            if self._drops > 0:
                self._drops -= 1
                self.requests_log.append((method, target, 0))
                return None
        try:
            answer = self._api(method, parts.path, headers, body)
        except _Refused as refused:
            answer = _error(refused.status, refused.message, refused.headers)
        with self._lock:
            self.requests_log.append((method, target, answer.status))
        return answer

    def _api(self, method: str, path: str, headers: Mapping[str, str], body: bytes) -> _Answer:
        if path not in (SEARCH_PATH, FIELDS_PATH):
            raise _Refused(404, f"No endpoint {method} {path}")
        self._authenticate(headers.get("Authorization") or "")
        self._inject_fault(path)
        if path == FIELDS_PATH:
            if method != "GET":
                raise _Refused(405, f"{method} is not allowed on {path}")
            return _json(200, [bob_field.metadata() for bob_field in FIELDS])
        if method != "POST":
            raise _Refused(405, f"{method} is not allowed on {path}")
        limit_headers = self._admit_search()
        return _json(200, {"employees": self._search(body)}, limit_headers)

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
        with self._lock:
            for fault in self._faults:
                if fault.path_contains is None or fault.path_contains in path:
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        self._faults.remove(fault)
                    break
            else:
                return
        headers = {} if fault.retry_after is None else {"Retry-After": _retry_after_header(fault.retry_after)}
        raise _Refused(fault.status, f"{HTTPStatus(fault.status).phrase} (a fault injected by the stand-in)",
                       headers)

    def _admit_search(self) -> dict[str, str]:
        """Count a search against the per-minute limit: its rate headers, or HiBob's 429."""
        with self._lock:
            limit = self._per_minute
            if limit is None:
                return {}
            now = time.monotonic()
            while self._searches and self._searches[0] <= now - 60:
                self._searches.popleft()
            admitted = len(self._searches) < limit
            if admitted:
                self._searches.append(now)
            reset = time.time() + (self._searches[0] + 60 - now if self._searches else 60)
            headers = {"X-RateLimit-Limit": str(limit), "X-RateLimit-Remaining": str(limit - len(self._searches)),
                       "X-RateLimit-Reset": str(math.ceil(reset))}
        if not admitted:
            raise _Refused(429, f"Too many requests: at most {limit} searches a minute", headers)
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

    # control endpoints

    def _control(self, method: str, path: str, body: bytes) -> _Answer:
        try:
            if method == "GET" and path == "requests":
                with self._lock:
                    return _json(200, {"requests": [list(entry) for entry in self.requests_log]})
            if method == "DELETE" and path == "fail":
                self.clear_faults()
                return _json(200, {"pending": 0})
            document = json.loads(body or b"{}")
            if not isinstance(document, dict):
                return _json(400, {"error": "the body must be a JSON object"})
            if method == "POST" and path == "fail":
                self.fail_next(int(document["status"]), count=int(document.get("count", 1)),
                               retry_after=document.get("retry_after"), path_contains=document.get("path_contains"))
                with self._lock:
                    return _json(200, {"pending": sum(fault.remaining for fault in self._faults)})
            if method == "POST" and path == "drop":
                self.drop_next(int(document.get("count", 1)))
                with self._lock:
                    return _json(200, {"pending": self._drops})
            if method == "POST" and path == "rate":
                per_minute = document["per_minute"]
                self.limit_rate(None if per_minute is None else int(per_minute))
                return _json(200, {"per_minute": per_minute})
            if method == "POST" and path in ("change", "depart"):
                indexes = [int(index) for index in document["indexes"]]
                (self.change if path == "change" else self.depart)(indexes)
                return _json(200, {path: indexes})
            if method == "POST" and path == "hire":
                return _json(201, {"indexes": self.hire(int(document["count"]))})
        except (KeyError, TypeError, ValueError) as error:
            return _json(400, {"error": f"missing or malformed field: {error}"})
        return _json(404, {"error": "not_found"})


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    standin: HiBobStandIn


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"  # keep-alive, as pooled clients (httpx) expect
    # Headers and body go out as two writes: without TCP_NODELAY, Nagle holds the body back until the
    # client's delayed ACK (40 ms) on a kept-alive connection.
    disable_nagle_algorithm = True
    timeout = 30  # idle keep-alive connections end instead of holding a thread

    def _dispatch(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        try:
            answer = self.server.standin._handle(self.command, self.path, self.headers, body)
        except Exception:  # a bug of the stand-in: answer as a server would and keep serving
            traceback.print_exc()
            answer = _error(500, "stand-in failure")
        if answer is None:  # drop_next: the request was read; the connection ends without an answer
            self.close_connection = True
            return
        write_answer(self, answer.status, answer.content_type, answer.body, answer.headers)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _dispatch

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.standin._log_requests:
            sys.stderr.write(f"hibob stand-in: {format % args}\n")


# --- command line -------------------------------------------------------------------------------------------------


def _credential_from(variable: str) -> tuple[str, str]:
    raw = os.environ.get(variable, "").strip()
    if not raw:
        return DEFAULT_SERVICE_USER_ID, DEFAULT_TOKEN
    document = json.loads(raw)
    if not isinstance(document, dict) or not all(isinstance(document.get(key), str) and document[key]
                                                  for key in ("service_user_id", "token")):
        raise ValueError(f"${variable} must be a JSON object with service_user_id and token")
    return document["service_user_id"], document["token"]


def _serve(args: argparse.Namespace) -> int:
    try:
        service_user_id, token = _credential_from(args.credential_env)
    except ValueError as error:
        print(f"cannot read the credential: {error}", file=sys.stderr)
        return 2
    workforce = Workforce(args.employees, domain=args.domain, seed=args.seed)
    standin = HiBobStandIn(workforce, service_user_id=service_user_id, token=token, unreadable=args.unreadable,
                           per_minute=args.per_minute or None, port=args.port)
    standin._log_requests = args.verbose
    source = f"${args.credential_env}" if os.environ.get(args.credential_env) else "the defaults of local/hibob.py"
    return serve_in_foreground(standin, args.port,
                               f"HiBob stand-in on {{base_url}} with {args.employees} employees; Ctrl-C stops it\n"
                               f"  connector base URL {{base_url}}, service user {service_user_id} "
                               f"(credential from {source})")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m local.hibob", description="Local stand-in of HiBob's API")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve the stand-in until Ctrl-C")
    serve.add_argument("--port", type=int, default=DEFAULT_PORT)
    serve.add_argument("--employees", type=int, default=50, help="how many employees the Workforce holds")
    serve.add_argument("--domain", default="example.com", help="the employees' email domain")
    serve.add_argument("--seed", type=int, default=7, help="the Workforce's seed")
    serve.add_argument("--unreadable", action="append", default=[], metavar="FIELD",
                       help="a field id the service user may not read (repeatable), e.g. work.title")
    serve.add_argument("--per-minute", type=int, default=DOCUMENTED_SEARCH_PER_MINUTE,
                       help="searches allowed a minute (0: no limit; HiBob documents 50)")
    serve.add_argument("--credential-env", default=DEFAULT_CREDENTIAL_ENV,
                       help='environment variable holding {"service_user_id", "token"} (default: '
                            f"{DEFAULT_CREDENTIAL_ENV}; unset: the stand-in's defaults)")
    serve.add_argument("--verbose", action="store_true", help="log every request to stderr")
    serve.set_defaults(run=_serve)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
