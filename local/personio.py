"""A local stand-in of Personio's public API (v1 personnel data and v2 persons/employments) serving a
``Workforce`` (local/hrms_people.py): the documented paths, JSON shapes, auth, paging, filters, limits and error
bodies, for the connectors in shared/hrms/connectors/personio.py and personio_v2.py. Standard-library HTTP
server on 127.0.0.1, one thread per connection, keep-alive.

Credentials: one API client (``client_id``, ``client_secret``). Its token (``papi-`` + random) is stable for
``token_lifetime`` seconds (86400), as Personio's is: asking again returns the same token until it expires or
``revoke_tokens()`` forgets every token. A token from either auth endpoint is accepted by both APIs.

Readable attributes: ``readable`` (the credential's whitelist; None: all of ``V1_ATTRIBUTES``). ``id`` is always
served. Attributes not whitelisted are omitted from every answer and from ``/attributes``, as Personio does.

v1 (errors ``{"success": false, "error": {"code", "message"}}``, ``application/json``):

- ``POST /v1/auth`` with ``client_id`` and ``client_secret`` in a JSON or form body -> 200 ``{"success": true,
  "data": {"token", "expires_in": 86400, "scope"}}``. Credentials in the query string -> 403 (refused since the
  deprecation of query-string credentials); missing -> 400; wrong -> 401 "Wrong credentials". 60 requests per
  minute (a sliding window) -> 429 beyond.
- ``GET /v1/company/employees?limit=&offset=&email=&updated_since=`` (``Authorization: Bearer <token>``): employees
  in id order; ``limit`` 1.. (default 50; above 100 served as 100: the documented maximum), ``offset`` >= 0 (else
  400). ``{"success": true, "metadata": {"total_elements", "current_page", "total_pages"}, "offset", "limit",
  "data": [{"type": "Employee", "attributes": {<key>: {"label", "value", "type", "universal_id"}}}]}``.
  ``updated_since`` (``YYYY-MM-DD`` or ISO 8601; without an offset read as UTC; malformed -> 400) keeps the
  employees whose ``last_modified_at`` is after it and makes ``email`` ignored. Personio's reference says it also
  makes ``limit`` and ``offset`` ignored, while a public report (developer.personio.de discussion "Employee
  endpoint paging with updated_since") says they page as usual: ``paged_updated_since`` (default True) serves
  the observed behaviour; False serves every match in one answer (``offset`` 0, ``limit`` = the count).
  Computing the filter reads every employee: O(size) per request.
- ``GET /v1/company/employees/{id}`` -> ``{"success": true, "data": <employee>}`` or 404.
- ``PATCH /v1/company/employees/{id}`` with JSON ``{"employee": {"custom_attributes": {"dynamic_<id>": value}}}``
  (the write-back) -> 200 ``{"success": true, "data": {"id": <id>}, "meta": []}`` (EmployeeUpdatedResponse).
  All or nothing: a key that is not an existing custom attribute, one not whitelisted for the credential
  (``readable``) or a value its type refuses -> 422 (the document's answer to an invalid payload) in the v1 error
  shape, every problem named in ``error.message``, nothing written. Values by type: text (``standard``) a string
  (a number is taken as its text), ``date`` ``YYYY-MM-DD``, ``decimal`` a number or numeric string, ``integer``
  an integer, ``tags`` a comma list or a list of the attribute's options; null clears. Keys outside the
  document's request body (``email`` among them: it cannot change) are ignored, as documented; the documented
  standard fields (first_name, position, supervisor_id, ...) -> 422, a limit of the stand-in. A body that is not
  ``{"employee": {...}}`` -> 422; an unknown or departed employee -> 404 (before the body is read). Written values
  appear wherever the attribute is served (``GET /v1/company/employees`` and ``/{id}``, wrapped like every
  attribute; v2 ``custom_attributes``) and move the employee's ``last_modified_at`` (v2 ``updated_at``) to the
  time of the write. ``written_attributes(employee_id)`` reads them.
- ``GET /v1/company/employees/attributes`` (and its alias ``/custom-attributes``) -> ``{"success": true,
  "data": [{"key", "label", "type", "universal_id", "options"}]}``: the readable attributes except ``id``.
- Attributes (``V1_ATTRIBUTES``): id, first_name, last_name, preferred_name, email, status (onboarding | active |
  leave | inactive), position, supervisor (``{"type": "Employee", "attributes": {id, first_name, last_name,
  email}}`` each wrapped, the readable ones; null for the top of the tree or a departed manager),
  employment_type, weekly_working_hours, hire_date (``YYYY-MM-DDT00:00:00+01:00`` or ``+02:00``: Berlin midnight),
  contract_end_date, termination_date (null), last_modified_at, office and department (``{"type": "Office" |
  "Department", "attributes": {"id", "name"}}``), dynamic_1001 "Competencies" (tags: a comma list) and
  dynamic_1002 "Review rating" (integer 1-5), and the write-back attributes nobody has a value for until one is
  written: dynamic_2001 "Last programme completed" (text), dynamic_2002 "Last programme date" (``date``, served as
  the document's example of a custom date shows it: ``YYYY-MM-DD``) and dynamic_2003 "Assessment score"
  (``decimal``, served as a JSON number: ``90``, ``87.5``). Answers carry ``Authorization: Bearer <the same
  token>``.

v2 (errors ``application/problem+json``):

- ``POST /v2/auth/token``, form-encoded ``grant_type=client_credentials&client_id&client_secret`` -> 200
  ``{"access_token", "token_type": "Bearer", "expires_in", "scope"}``. 400 with the OAuth error body
  ``{"error", "error_description", "error_uri", "timestamp", "trace_id"}``: another content type or no
  grant_type -> ``invalid_request``; another OAuth grant -> ``unsupported_grant_type``, an unknown one ->
  ``invalid_grant``; no secret or an unknown client -> ``invalid_client``; a wrong secret ->
  ``unauthorized_client`` (the documented example of wrong credentials). 150 per minute -> 429 beyond.
- ``GET /v2/persons?limit=1..50&cursor=`` (default 10; outside -> 400) and filters ``id``, ``email`` (comma
  lists), ``status`` (ACTIVE | INACTIVE), ``updated_at``, ``updated_at.gt``, ``updated_at.lt`` (malformed ->
  400 "Provided request parameters are invalid."; another operator -> 400 "Provided filter encoding is
  invalid."); ``{"_data": [person], "_meta": {"links": {"self": {"href"}, "next": {"href"}}}}``, ``next`` only
  while more follow. The cursor (``cur_...``) is the last id served: departures do not shift later pages.
  A person: ``id`` (string), email, first_name, last_name, preferred_name, status (ACTIVE | INACTIVE),
  updated_at (whitelist name ``last_modified_at``), ``custom_attributes`` [{id: "dynamic_...", type, value,
  global_id, label}] (the value a string or a list of strings; the write-back attributes only once written),
  ``employments`` [{id}] and ``_meta``; a person whose credential reads nothing comes back with only ``id``,
  ``employments`` and ``_meta``.
  ``GET /v2/persons/{id}`` -> one person or 404.
- ``GET /v2/persons/{id}/employments`` -> ``{"_data": [employment], "_meta"}``, most recent first: ``id``,
  ``person`` {id}, status (ACTIVE | INACTIVE | ONBOARDING | LEAVE), position {title}, supervisor {id} (null at the
  top), office {id}, org_units [{type: "department", id}], employment_start_date, type, weekly_working_hours,
  contract_end_date, updated_at; each tied to the v1 whitelist name it shows (status, position, supervisor,
  office, department, hire_date, employment_type, weekly_working_hours, contract_end_date, last_modified_at).
  Every 25th person (index % 25 == 3) also has an older INACTIVE employment, listed second. Unknown person -> 404.
- ``GET /v2/org-units/{id}?type=department`` -> ``{"id", "type", "name", "_meta"}``; no or another type -> 400,
  unknown id -> 404. There is no v2 endpoint for office names (a known gap of Personio's v2 API).

Throttling: ``limit_rate(per_minute)`` (default off) refuses data requests beyond it within any 60 s with 429
and no Retry-After, as Personio's employees endpoint does (300 per minute there). Faults, before anything else
on every API path (never on ``/_standin``), drops first: ``drop_next(count=1)`` reads the next ``count``
requests and closes their connections without an answer; ``fail_next(status, count=1, retry_after=None,
path_contains=None)`` answers the next ``count`` matching requests with ``status`` and the vendor's error body for
that path (``Retry-After`` only when given, in whole seconds). ``clear_faults()`` forgets both and the rate
limit. Observability: ``requests_log`` ((method, path with query, status) of every API request; 0 for a dropped
one) and ``requests_count``.

Control endpoints (no auth, never faulted or throttled), JSON bodies:
``POST /_standin/fail`` {status, count?, retry_after?, path_contains?}; ``POST /_standin/drop`` {count?};
``POST /_standin/rate`` {per_minute: n | null}; ``DELETE /_standin/fail`` (clear_faults);
``POST /_standin/change`` {indexes} and ``POST /_standin/depart`` {indexes} (the workforce's change and depart);
``POST /_standin/hire`` {count} -> {indexes}; ``POST /_standin/readable`` {attributes: [...] | null};
``POST /_standin/revoke`` (revoke_tokens); ``GET /_standin/requests`` -> {requests: [[method, path, status]]}.

Command line: ``python -m local.personio serve --port 7084 --employees 500 [--domain D] [--seed S]
[--credentials-env VAR]``: the credential (``{"client_id", "client_secret"}``, the connectors' format) is read
from the environment variable VAR (default PERSONIO_STANDIN_CREDENTIAL), never from the command line.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import bisect
import json
import math
import os
import secrets
import sys
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from http import HTTPStatus
from json.encoder import encode_basestring  # C-accelerated quoting: pages are built from fragments
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit
from zoneinfo import ZoneInfo

from local.hrms_people import COMPETENCIES, DEPARTMENTS, Person, Workforce
from local.hrms_standin import Answer, HrmsStandIn, RateWindow, command_line, run_command, serve_standin

DEFAULT_PORT = 7084
DEFAULT_CLIENT_ID = "papi-local-client"
DEFAULT_CLIENT_SECRET = "papi-local-secret"  # noqa: S105 - the local stand-in's default, not a real secret
CREDENTIALS_ENV = "PERSONIO_STANDIN_CREDENTIAL"
TOKEN_LIFETIME = 86400
V1_DEFAULT_LIMIT, V1_MAX_LIMIT = 50, 100
V2_DEFAULT_LIMIT, V2_MAX_LIMIT = 10, 50
V1_AUTH_PER_MINUTE = 60
V2_AUTH_PER_MINUTE = 150
COMPETENCIES_KEY = "dynamic_1001"
REVIEW_RATING_KEY = "dynamic_1002"
# Custom attributes for write-back: no employee has a value until one is written.
LAST_PROGRAMME_KEY = "dynamic_2001"
LAST_PROGRAMME_DATE_KEY = "dynamic_2002"
ASSESSMENT_SCORE_KEY = "dynamic_2003"
# What ``PATCH /v1/company/employees/{id}`` documents as updatable besides custom_attributes (not modelled here).
V1_UPDATABLE_STANDARD = ("first_name", "last_name", "preferred_name", "gender", "position", "subcompany",
                         "department", "office", "hire_date", "weekly_working_hours", "status", "supervisor_id")
ERRORS_URL = "https://developer.personio.de/reference/errors"
OAUTH_GRANTS = frozenset({"authorization_code", "refresh_token", "password", "implicit",
                          "urn:ietf:params:oauth:grant-type:device_code",
                          "urn:ietf:params:oauth:grant-type:jwt-bearer"})
_BERLIN = ZoneInfo("Europe/Berlin")
_EMPLOYMENT_NAMESPACE = uuid.UUID("6f1c1d5e-62a4-4a57-9a0c-0c1bb1e7f3a1")


# --- v1 attributes, rendered from precomputed fragments -------------------------------------------------------


@dataclass(frozen=True)
class V1Attribute:
    key: str
    label: str
    type: str
    universal_id: str | None
    options: tuple[str, ...] = ()

    @property
    def prefix(self) -> str:
        return f'{encode_basestring(self.key)}:{{"label":{encode_basestring(self.label)},"value":'

    @property
    def suffix(self) -> str:
        universal = "null" if self.universal_id is None else encode_basestring(self.universal_id)
        return f',"type":{encode_basestring(self.type)},"universal_id":{universal}}}'

    def metadata(self) -> dict[str, Any]:
        return {"key": self.key, "label": self.label, "type": self.type, "universal_id": self.universal_id,
                "options": list(self.options)}


V1_ATTRIBUTES: tuple[V1Attribute, ...] = (
    V1Attribute("id", "ID", "integer", "id"),
    V1Attribute("first_name", "First name", "standard", "first_name"),
    V1Attribute("last_name", "Last name", "standard", "last_name"),
    V1Attribute("preferred_name", "Name (preferred)", "standard", "preferred_name"),
    V1Attribute("email", "Email", "standard", "email"),
    V1Attribute("status", "Status", "standard", "status"),
    V1Attribute("position", "Position", "standard", "position"),
    V1Attribute("supervisor", "Supervisor", "standard", "supervisor"),
    V1Attribute("employment_type", "Employment type", "standard", "employment_type"),
    V1Attribute("weekly_working_hours", "Weekly hours", "standard", "weekly_working_hours"),
    V1Attribute("hire_date", "Hire date", "date", "hire_date"),
    V1Attribute("contract_end_date", "Contract ends", "date", "contract_end_date"),
    V1Attribute("termination_date", "Termination date", "date", "termination_date"),
    V1Attribute("last_modified_at", "Last modified", "date", "last_modified_at"),
    V1Attribute("office", "Office", "standard", "office"),
    V1Attribute("department", "Department", "standard", "department"),
    V1Attribute(COMPETENCIES_KEY, "Competencies", "tags", None, COMPETENCIES),
    V1Attribute(REVIEW_RATING_KEY, "Review rating", "integer", None),
    V1Attribute(LAST_PROGRAMME_KEY, "Last programme completed", "standard", None),
    V1Attribute(LAST_PROGRAMME_DATE_KEY, "Last programme date", "date", None),
    V1Attribute(ASSESSMENT_SCORE_KEY, "Assessment score", "decimal", None),
)
V1_KEYS = tuple(attribute.key for attribute in V1_ATTRIBUTES)
V1_BY_KEY = {attribute.key: attribute for attribute in V1_ATTRIBUTES}
WRITEBACK_KEYS = (LAST_PROGRAMME_KEY, LAST_PROGRAMME_DATE_KEY, ASSESSMENT_SCORE_KEY)
# Each custom attribute's v2 type and global id (v2 sends every custom value as a string, or a list of strings).
V2_CUSTOM_ATTRIBUTES: dict[str, tuple[str, str]] = {
    COMPETENCIES_KEY: ("STRING_LIST", "competencies"), REVIEW_RATING_KEY: ("INT", "review_rating"),
    LAST_PROGRAMME_KEY: ("STRING", "last_programme_completed"),
    LAST_PROGRAMME_DATE_KEY: ("DATE", "last_programme_date"), ASSESSMENT_SCORE_KEY: ("DOUBLE", "assessment_score"),
}
_UNSET = {key: "null" for key in WRITEBACK_KEYS}
# Names a supervisor's short record carries (each only when readable).
_SHORT_EMPLOYEE = ("id", "first_name", "last_name", "email")


def _midnight_in_berlin(day: str) -> str:
    """Personio's date attributes: local midnight with the company's offset (not UTC)."""
    moment = datetime.fromisoformat(day).replace(tzinfo=_BERLIN)
    return moment.isoformat()


def _iso_utc(moment: datetime) -> str:
    return (moment if moment.tzinfo is UTC else moment.astimezone(UTC)).isoformat(timespec="seconds")


def _iso_z(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_moment(value: str, *, date_only: bool = True) -> datetime:
    """An ISO 8601 date-time (``Z`` or an offset; none: UTC) or, when allowed, ``YYYY-MM-DD``; ValueError else."""
    text = value.strip()
    if not text or (len(text) == 10 and not date_only):
        raise ValueError(value)
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    moment = datetime.fromisoformat(text)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


class _V1Renderer:
    """Builds v1 employee JSON with one ``%`` template per readable set: the wrappers are fixed text, only the
    values are quoted per employee (no intermediate dicts of wrappers, no json.dumps)."""

    def __init__(self, readable: frozenset[str]) -> None:
        self.readable = readable
        self._hire_dates: dict[str, str] = {}
        self._objects: dict[tuple[str, int, str], str] = {}
        self._template = self._template_of(
            [attribute for attribute in V1_ATTRIBUTES if attribute.key in readable])
        # The supervisor's short record: its id always, its names and email when readable.
        self._short_template = self._template_of(
            [attribute for attribute in V1_ATTRIBUTES
             if attribute.key in _SHORT_EMPLOYEE and (attribute.key == "id" or attribute.key in readable)])

    @staticmethod
    def _template_of(attributes: Sequence[V1Attribute]) -> str:
        parts = [attribute.prefix.replace("%", "%%") + f"%({attribute.key})s" + attribute.suffix.replace("%", "%%")
                 for attribute in attributes]
        return '{"type":"Employee","attributes":{' + ",".join(parts) + "}}"

    def _object(self, kind: str, object_id: int, name: str) -> str:
        key = (kind, object_id, name)
        found = self._objects.get(key)
        if found is None:
            found = f'{{"type":"{kind}","attributes":{{"id":{object_id},"name":{encode_basestring(name)}}}}}'
            self._objects[key] = found
        return found

    def _hire_date(self, day: str) -> str:
        found = self._hire_dates.get(day)
        if found is None:
            found = self._hire_dates[day] = encode_basestring(_midnight_in_berlin(day))
        return found

    def employee(self, p: Person, manager: Person | None, written: Mapping[str, Any] | None = None) -> str:
        """``p`` as v1 serves it; ``written``: custom attribute values written over the workforce's."""
        quoted = encode_basestring
        supervisor = "null" if manager is None else self._short_template % {
            "id": manager.id, "first_name": quoted(manager.first_name), "last_name": quoted(manager.last_name),
            "email": quoted(manager.email)}
        values = {
            "id": p.id,
            "first_name": quoted(p.first_name),
            "last_name": quoted(p.last_name),
            "preferred_name": quoted(f"{p.first_name} {p.last_name}"),
            "email": quoted(p.email),
            "status": quoted(p.status),
            "position": quoted(p.title),
            "supervisor": supervisor,
            "employment_type": '"internal"',
            "weekly_working_hours": '"40"',
            "hire_date": self._hire_date(p.hire_date),
            "contract_end_date": "null",
            "termination_date": "null",
            "last_modified_at": quoted(_iso_utc(p.updated_at)),
            "office": self._object("Office", p.office_id, p.office),
            "department": self._object("Department", p.department_id, p.department),
            COMPETENCIES_KEY: quoted(p.competencies),
            REVIEW_RATING_KEY: p.review_rating,
            **_UNSET,
        }
        if written:
            values.update((key, json.dumps(value, ensure_ascii=False)) for key, value in written.items())
        return self._template % values


# --- errors and answers ------------------------------------------------------------------------------------


def _json_answer(status: int, payload: Any, headers: Mapping[str, str] | None = None,
                 content_type: str = "application/json") -> Answer:
    return Answer(status, json.dumps(payload, ensure_ascii=False).encode(), content_type, dict(headers or {}))


def _v1_error(status: int, message: str, headers: Mapping[str, str] | None = None) -> Answer:
    return _json_answer(status, {"success": False, "error": {"code": status, "message": message}}, headers)


def _problem(status: int, detail: str, *, code: str | None = None, title: str | None = None,
             headers: Mapping[str, str] | None = None) -> Answer:
    phrase = HTTPStatus(status).phrase
    code = code or "common." + phrase.lower().replace(" ", "_")
    body = {"personio_trace_id": str(uuid.uuid4()), "timestamp": _iso_z(datetime.now(UTC)),
            "errors": [{"title": title or phrase, "detail": detail, "type": f"{ERRORS_URL}#{code}"}]}
    return _json_answer(status, body, headers, content_type="application/problem+json")


def _oauth_error(status: int, error: str, description: str, headers: Mapping[str, str] | None = None,
                 meta: Mapping[str, Any] | None = None) -> Answer:
    body: dict[str, Any] = {"timestamp": _iso_z(datetime.now(UTC)), "trace_id": str(uuid.uuid4()),
                            "error": error, "error_description": description,
                            "error_uri": f"{ERRORS_URL}#credentials.oauth2.{error}"}
    if meta:
        body["meta"] = dict(meta)
    return _json_answer(status, body, headers, content_type="application/problem+json")


def _error_for(path: str, status: int, headers: Mapping[str, str]) -> Answer:
    """The vendor's error body for ``status`` on ``path`` (an injected fault or throttling)."""
    phrase = HTTPStatus(status).phrase
    if path.startswith("/v2/auth/"):
        error = "temporarily_unavailable" if status in (429, 503) else "server_error"
        return _oauth_error(status, error, phrase, headers)
    if path.startswith("/v2/"):
        return _problem(status, "There was a problem while processing this request. Please try again later.",
                        headers=headers)
    return _v1_error(status, phrase, headers)


def _v2_cursor(person_id: int) -> str:
    return "cur_" + base64.urlsafe_b64encode(f"after:{person_id}".encode()).decode().rstrip("=")


def _v2_after(cursor: str) -> int:
    if not cursor.startswith("cur_"):
        raise ValueError(cursor)
    raw = cursor[4:]
    try:
        text = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError) as error:
        raise ValueError(cursor) from error
    prefix, _, number = text.partition(":")
    if prefix != "after" or not number.isdigit():
        raise ValueError(cursor)
    return int(number)


def _form_or_json(headers: Mapping[str, str], body: bytes) -> dict[str, str]:
    content_type = (headers.get("Content-Type") or "").split(";", 1)[0].strip().lower()
    if content_type == "application/json":
        try:
            document = json.loads(body or b"{}")
        except ValueError:
            return {}
        return {key: value for key, value in document.items() if isinstance(value, str)} \
            if isinstance(document, dict) else {}
    if content_type == "application/x-www-form-urlencoded":
        return {key: values[0] for key, values in parse_qs(body.decode("utf-8", "replace")).items()}
    return {}


def _number(value: Any) -> Decimal | None:
    """A finite number, or its decimal string; None otherwise (booleans are not numbers)."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


def custom_value(attribute: V1Attribute, value: Any) -> tuple[Any, str | None]:
    """A custom attribute's value as PATCH writes it, by the attribute's type: (the stored value, None), or
    (None, why it is refused). Null clears the value."""
    if value is None:
        return None, None
    if attribute.type == "date":
        if isinstance(value, str) and len(value) == 10:
            try:
                return date.fromisoformat(value).isoformat(), None
            except ValueError:
                pass
        return None, "must be a date (YYYY-MM-DD)"
    if attribute.type in ("decimal", "integer"):
        number = _number(value)
        if number is None or (attribute.type == "integer" and number != number.to_integral_value()):
            return None, "must be a number" if attribute.type == "decimal" else "must be an integer"
        return (int(number) if number == number.to_integral_value() else float(number)), None
    if attribute.type == "tags":
        tags = value.split(",") if isinstance(value, str) else value
        if not isinstance(tags, list) or not all(isinstance(tag, str) and tag.strip() for tag in tags):
            return None, "must be a comma list (or a list) of options"
        tags = [tag.strip() for tag in tags]
        unknown = [tag for tag in tags if attribute.options and tag not in attribute.options]
        if unknown:
            return None, f"has no option {', '.join(unknown)}"
        return ",".join(tags), None
    number = _number(value) if not isinstance(value, str) else None
    if isinstance(value, str) or number is not None:  # a text attribute takes a number as its text
        return (value if isinstance(value, str) else format(number.normalize(), "f")), None
    return None, "must be a string"


# --- the stand-in ----------------------------------------------------------------------------------------------


class PersonioStandIn(HrmsStandIn):
    """Personio's v1 and v2 APIs over a Workforce; see the module docstring for what it answers."""

    thread_name = "Personio stand-in"
    log_name = "personio stand-in"

    def __init__(self, workforce: Workforce, *, client_id: str = DEFAULT_CLIENT_ID,
                 client_secret: str = DEFAULT_CLIENT_SECRET, port: int = 0,
                 readable: Iterable[str] | None = None, paged_updated_since: bool = True,
                 token_lifetime: int = TOKEN_LIFETIME) -> None:
        super().__init__(port=port)
        self.workforce = workforce
        self.client_id = client_id
        self.client_secret = client_secret
        self.paged_updated_since = paged_updated_since
        self.token_lifetime = token_lifetime
        self.base_url = f"http://127.0.0.1:{port}" if port else ""
        self._tokens: dict[str, float] = {}  # token -> monotonic expiry
        self._current_token: str | None = None
        self._auth_v1 = RateWindow(V1_AUTH_PER_MINUTE)  # the auth endpoints' own limits, never lifted
        self._auth_v2 = RateWindow(V2_AUTH_PER_MINUTE)
        self._present_cache: tuple[tuple[int, int], list[int]] | None = None
        # Custom attribute values written with PATCH, and when (copy-on-write: readers take no lock).
        self._written: dict[int, dict[str, Any]] = {}
        self._written_at: dict[int, datetime] = {}
        self.set_readable(readable)

    # what the credential reads, and the workforce

    def set_readable(self, names: Iterable[str] | None) -> None:
        """The credential's whitelist (None: every attribute); ``id`` is always readable."""
        wanted = set(V1_KEYS) if names is None else {*names, "id"}
        unknown = wanted - set(V1_KEYS)
        if unknown:
            raise ValueError(f"unknown attributes: {', '.join(sorted(unknown))}")
        self.readable = frozenset(wanted)
        self._renderer = _V1Renderer(self.readable)

    def written_attributes(self, employee_id: int | str) -> dict[str, Any]:
        """The custom attribute values written for the employee with PATCH (the stored values: text and dates as
        strings, numbers as numbers, tags as a comma list, None when cleared)."""
        return dict(self._written.get(int(employee_id), {}))

    def _served(self, person: Person) -> Person:
        """The person as the API serves them: a write moves ``last_modified_at`` (v2 ``updated_at``) on."""
        written_at = self._written_at.get(person.id)
        return person if written_at is None or written_at <= person.updated_at else \
            replace(person, updated_at=written_at)

    def _present(self) -> list[int]:
        """The workforce's present indexes (shared: never mutate), computed again only when its size or its
        number of departures changed. Workforce has no public change counter and ``indexes()`` costs O(size)
        (2 ms for 50,000: as much as rendering a page); departures only ever grow, so their count, read from the
        workforce's private set, tells when the list is stale."""
        workforce = self.workforce
        departed = getattr(workforce, "_departed", None)
        if departed is None:
            return workforce.indexes()
        key = (workforce.size, len(departed))  # read before computing: a departure meanwhile misses the key
        with self._lock:
            cached = self._present_cache
        if cached is not None and cached[0] == key:
            return cached[1]
        indexes = workforce.indexes()
        with self._lock:
            self._present_cache = (key, indexes)
        return indexes

    # faults and throttling

    def fail_next(self, status: int, *, count: int = 1, retry_after: float | None = None,
                  path_contains: str | None = None) -> None:
        """Answer the next ``count`` API requests (whose path contains ``path_contains``) with ``status``."""
        if not 400 <= status <= 599:
            raise ValueError(f"fail_next wants an error status (400-599), not {status}")
        super().fail_next(status, count=count, retry_after=retry_after, path_contains=path_contains)

    def limit_rate(self, per_minute: int | None) -> None:
        """Refuse data requests beyond ``per_minute`` in any 60 s with 429 (no Retry-After); None or 0: no limit."""
        super().limit_rate(per_minute or None)

    def revoke_tokens(self) -> None:
        """Every token issued so far stops working (401); the next auth issues a new one."""
        with self._lock:
            self._tokens.clear()
            self._current_token = None

    # tokens

    def _issue_token(self) -> tuple[str, int]:
        """The client's stable token and its remaining lifetime (a new one once it expired or was revoked)."""
        now = time.monotonic()
        with self._lock:
            token = self._current_token
            if token is None or self._tokens.get(token, 0.0) <= now:
                token = "papi-" + secrets.token_urlsafe(32)
                self._tokens[token] = now + self.token_lifetime
                self._current_token = token
            return token, max(0, int(self._tokens[token] - now))

    def _bearer(self, headers: Mapping[str, str]) -> tuple[str | None, bool]:
        """(the valid token, whether an Authorization header was sent at all)."""
        value = (headers.get("Authorization") or "").strip()
        if not value:
            return None, False
        scheme, _, token = value.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return None, True
        with self._lock:
            expiry = self._tokens.get(token)
        return (token if expiry is not None and expiry > time.monotonic() else None), True

    # HTTP

    def _failure_answer(self) -> Answer:
        return _v1_error(500, "Internal Server Error")

    def _api_answer(self, method: str, target: str, headers: Mapping[str, str], body: bytes) -> Answer:
        parts = urlsplit(target)
        path = parts.path
        fault = self._plan.take_fault(path)  # before anything else, even authentication
        if fault is not None:
            extra = {"Retry-After": str(math.ceil(fault.retry_after))} if fault.retry_after is not None else {}
            return _error_for(path, fault.status, extra)
        query = parse_qs(parts.query, keep_blank_values=True)
        if path == "/v1/auth":
            return self._v1_auth(method, query, headers, body) if method == "POST" else \
                _v1_error(405, "Method Not Allowed")
        if path == "/v2/auth/token":
            return self._v2_auth(headers, body) if method == "POST" else \
                _oauth_error(405, "invalid_request", "Method Not Allowed")
        v2 = path.startswith("/v2/")
        if not (v2 or path.startswith("/v1/")):
            return _v1_error(404, "Not Found")
        token, sent = self._bearer(headers)
        if token is None:
            if v2:
                return _problem(401, "The access token is missing, invalid or expired.", code="common.unauthorized")
            return _v1_error(401, "Authorization is not provided") if not sent else \
                _v1_error(401, "The token is invalid or has expired")
        throttle = self._plan.admit()  # data requests only
        if throttle is not None and not throttle.admitted:
            return _error_for(path, 429, {})
        segments = path.strip("/").split("/")
        if v2:
            return self._v2(segments[1:], query) if method == "GET" else _problem(405, "Method Not Allowed")
        if method == "GET":
            answer = self._v1(segments[1:], query)
        elif method == "PATCH" and len(segments) == 4 and segments[1:3] == ["company", "employees"] and \
                segments[3] not in ("attributes", "custom-attributes"):
            answer = self._v1_update(segments[3], body)
        else:
            return _v1_error(405, "Method Not Allowed")
        answer.headers["Authorization"] = f"Bearer {token}"  # Personio echoes the (stable) token
        return answer

    # v1

    def _v1_auth(self, method: str, query: Mapping[str, list[str]], headers: Mapping[str, str],
                 body: bytes) -> Answer:
        if "client_id" in query or "client_secret" in query:
            return _v1_error(403, "Credentials in the query string are no longer accepted: send client_id and "
                                  "client_secret in the request body.")
        with self._lock:
            allowed = self._auth_v1.admit(time.monotonic())
        if not allowed:
            return _v1_error(429, "Too Many Requests")
        fields = _form_or_json(headers, body)
        client_id, client_secret = fields.get("client_id"), fields.get("client_secret")
        if not client_id or not client_secret:
            return _v1_error(400, "client_id and client_secret are required")
        if not (secrets.compare_digest(client_id, self.client_id)
                and secrets.compare_digest(client_secret, self.client_secret)):
            return _v1_error(401, "Wrong credentials")
        token, expires_in = self._issue_token()
        return _json_answer(200, {"success": True, "data": {"token": token, "expires_in": expires_in,
                                                            "scope": "employees:read"}})

    def _v1(self, route: list[str], query: Mapping[str, list[str]]) -> Answer:
        if route[:2] != ["company", "employees"]:
            return _v1_error(404, "Not Found")
        rest = route[2:]
        if rest in (["attributes"], ["custom-attributes"]):
            data = [attribute.metadata() for attribute in V1_ATTRIBUTES
                    if attribute.key in self.readable and attribute.key != "id"]
            return _json_answer(200, {"success": True, "data": data})
        if len(rest) == 1:
            person = self.workforce.by_id(int(rest[0])) if rest[0].isdigit() else None
            if person is None:
                return _v1_error(404, "The employee was not found.")
            renderer = self._renderer
            served = renderer.employee(self._served(person), self._manager(person, {}), self._written.get(person.id))
            return Answer(200, f'{{"success":true,"data":{served}}}'.encode())
        if rest:
            return _v1_error(404, "Not Found")
        return self._v1_employees(query)

    def _v1_update(self, employee_id: str, body: bytes) -> Answer:
        """``PATCH /v1/company/employees/{id}``: custom attributes, all or nothing (see the module docstring)."""
        person = self.workforce.by_id(int(employee_id)) if employee_id.isdigit() else None
        if person is None:
            return _v1_error(404, "The employee was not found.")
        try:
            document = json.loads(body or b"null")
        except ValueError:
            document = None
        employee = document.get("employee") if isinstance(document, dict) else None
        if not isinstance(employee, dict):
            return _v1_error(422, 'The request body must be a JSON object {"employee": {...}}')
        standard = [key for key in V1_UPDATABLE_STANDARD if key in employee]
        if standard:
            return _v1_error(422, f"The stand-in updates custom_attributes only, not {', '.join(standard)}")
        custom = employee.get("custom_attributes", {})  # anything else (email too) is ignored, as documented
        if not isinstance(custom, dict):
            return _v1_error(422, "custom_attributes must be an object of dynamic_<id> keys")
        readable, values, problems = self.readable, {}, []
        for key, value in custom.items():
            attribute = V1_BY_KEY.get(key) if isinstance(key, str) and key.startswith("dynamic_") else None
            if attribute is None:
                problems.append(f"{key}: there is no such custom attribute")
            elif key not in readable:
                problems.append(f"{key}: the attribute is not whitelisted for this API credential")
            else:
                stored, refused = custom_value(attribute, value)
                if refused:
                    problems.append(f"{key}: {attribute.label} {refused}")
                else:
                    values[key] = stored
        if problems:
            return _v1_error(422, "; ".join(problems))
        if values:
            with self._lock:
                self._written = {**self._written, person.id: {**self._written.get(person.id, {}), **values}}
                self._written_at = {**self._written_at, person.id: datetime.now(UTC)}
        return _json_answer(200, {"success": True, "data": {"id": person.id}, "meta": []})

    def _manager(self, person: Person, cache: dict[int, Person | None]) -> Person | None:
        if "supervisor" not in self.readable or person.manager_index is None:
            return None
        index = person.manager_index
        if index not in cache:
            cache[index] = self.workforce.by_id(self.workforce.first_id + index)
        return cache[index]

    def _v1_employees(self, query: Mapping[str, list[str]]) -> Answer:
        try:
            limit = int(query.get("limit", [str(V1_DEFAULT_LIMIT)])[0])
            offset = int(query.get("offset", ["0"])[0])
        except ValueError:
            return _v1_error(400, "limit and offset must be integers")
        if limit < 1 or offset < 0:
            return _v1_error(400, "limit must be at least 1 and offset at least 0")
        limit = min(limit, V1_MAX_LIMIT)
        since_text = query.get("updated_since", [""])[0]
        email = query.get("email", [""])[0].strip().lower()
        workforce = self.workforce
        indexes = self._present()
        paged = True
        if since_text:
            try:
                since = parse_moment(since_text)
            except ValueError:
                return _v1_error(400, "updated_since must be an ISO 8601 date-time or YYYY-MM-DD")
            served = self._served
            indexes = [index for index in indexes if served(workforce.person(index)).updated_at > since]
            paged = self.paged_updated_since
        elif email:
            indexes = [index for index in indexes if workforce.person(index).email.lower() == email]
        total = len(indexes)
        if not paged:
            offset, limit = 0, max(total, 1)
        window = indexes[offset:offset + limit] if paged else indexes
        renderer, managers, written = self._renderer, {}, self._written
        employees = []
        for index in window:
            person = workforce.person(index)
            employees.append(renderer.employee(self._served(person), self._manager(person, managers),
                                               written.get(person.id)))
        pages = math.ceil(total / limit) if total else 0
        document = (f'{{"success":true,"metadata":{{"total_elements":{total},"current_page":{offset // limit},'
                    f'"total_pages":{pages}}},"offset":{offset},"limit":{limit},"data":[{",".join(employees)}]}}')
        return Answer(200, document.encode())

    # v2

    def _v2_auth(self, headers: Mapping[str, str], body: bytes) -> Answer:
        with self._lock:
            allowed = self._auth_v2.admit(time.monotonic())
        if not allowed:
            return _oauth_error(429, "temporarily_unavailable", "Too many token requests.")
        content_type = (headers.get("Content-Type") or "").split(";", 1)[0].strip().lower()
        if content_type != "application/x-www-form-urlencoded":
            return _oauth_error(400, "invalid_request",
                                'The content type of the request must be "application/x-www-form-urlencoded".')
        fields = {key: values[0] for key, values in parse_qs(body.decode("utf-8", "replace")).items()}
        grant = fields.get("grant_type")
        if not grant:
            return _oauth_error(400, "invalid_request", "The request has missing or invalid required parameters.",
                                meta={"missing_parameters": ["grant_type"]})
        if grant != "client_credentials":
            if grant in OAUTH_GRANTS:
                return _oauth_error(400, "unsupported_grant_type",
                                    "The requested authorization grant type is not supported by the server.",
                                    meta={"grant_type": grant})
            return _oauth_error(400, "invalid_grant", "Error in the authorization flow.")
        client_id, client_secret = fields.get("client_id", ""), fields.get("client_secret", "")
        if not client_secret or not secrets.compare_digest(client_id, self.client_id):
            return _oauth_error(400, "invalid_client", "Client authentication failed (e.g., unknown client, wrong "
                                                       "secret, no client authentication included).")
        if not secrets.compare_digest(client_secret, self.client_secret):
            return _oauth_error(400, "unauthorized_client", "Client is not allowed to use the specified grant type "
                                                            "flow.")
        token, expires_in = self._issue_token()
        return _json_answer(200, {"access_token": token, "token_type": "Bearer", "expires_in": expires_in,
                                  "scope": "personio:persons:read personio:employments:read"},
                            {"Cache-Control": "no-store"})

    def _v2(self, route: list[str], query: Mapping[str, list[str]]) -> Answer:
        if route == ["persons"]:
            return self._v2_persons(query)
        if len(route) >= 2 and route[0] == "persons":
            person = self.workforce.by_id(int(route[1])) if route[1].isdigit() else None
            if person is None:
                return _problem(404, "There is no resource for the specified id.", code="common.resource_not_found",
                                title="Resource not found")
            if len(route) == 2:
                return _json_answer(200, self._v2_person(person))
            if route[2:] == ["employments"]:
                employments = self._v2_employments(person)
                return _json_answer(200, {"_data": employments, "_meta": {"links": {"self": {
                    "href": f"{self.base_url}/v2/persons/{person.id}/employments"}}}})
        if len(route) == 2 and route[0] == "org-units":
            return self._v2_org_unit(route[1], query)
        return _problem(404, "The requested resource was not found.", code="common.requested_resource_not_found",
                        title="Not found")

    def _v2_org_unit(self, unit_id: str, query: Mapping[str, list[str]]) -> Answer:
        kind = query.get("type", [""])[0]
        if kind not in ("department", "team"):
            return _problem(400, "Provided request parameters are invalid.", code="common.bad_request",
                            title="Bad request")
        names = {str(department_id): name for department_id, name in DEPARTMENTS} if kind == "department" else {}
        if unit_id not in names:
            return _problem(404, "There is no resource for the specified id.", code="common.resource_not_found",
                            title="Resource not found")
        return _json_answer(200, {"id": unit_id, "type": kind, "name": names[unit_id], "_meta": {"links": {
            "self": {"href": f"{self.base_url}/v2/org-units/{unit_id}?type={kind}"}}}})

    def _v2_persons(self, query: Mapping[str, list[str]]) -> Answer:
        invalid_value = _problem(400, "Provided request parameters are invalid.", code="common.bad_request",
                                 title="Bad request")
        for name in query:
            base, dot, operator = name.partition(".")
            if dot and (base not in ("id", "email", "first_name", "last_name", "preferred_name", "created_at",
                                     "updated_at") or operator not in ("gt", "lt")):
                return _problem(400, "Provided filter encoding is invalid.", code="common.bad_request",
                                title="Bad request")
        try:
            limit = int(query.get("limit", [str(V2_DEFAULT_LIMIT)])[0])
            after = _v2_after(query["cursor"][0]) if query.get("cursor", [""])[0] else None
            bounds = {name: parse_moment(query[name][0], date_only=False)
                      for name in ("updated_at", "updated_at.gt", "updated_at.lt") if query.get(name, [""])[0]}
        except ValueError:
            return invalid_value
        status = query.get("status", [""])[0]
        if not 1 <= limit <= V2_MAX_LIMIT or status not in ("", "ACTIVE", "INACTIVE"):
            return invalid_value
        ids = {part.strip() for part in query.get("id", [""])[0].split(",") if part.strip()}
        emails = {part.strip().lower() for part in query.get("email", [""])[0].split(",") if part.strip()}
        workforce = self.workforce
        indexes = self._present()
        if after is not None:
            indexes = indexes[bisect.bisect_right(indexes, after - workforce.first_id):]
        matching: list[Person] = []
        for index in indexes:
            person = self._served(workforce.person(index))
            if ((ids and str(person.id) not in ids) or (emails and person.email.lower() not in emails)
                    or ("updated_at.gt" in bounds and not person.updated_at > bounds["updated_at.gt"])
                    or ("updated_at.lt" in bounds and not person.updated_at < bounds["updated_at.lt"])
                    or ("updated_at" in bounds and person.updated_at != bounds["updated_at"])
                    or (status and _person_status(person) != status)):
                continue
            matching.append(person)
            if len(matching) > limit:
                break
        page, more = matching[:limit], len(matching) > limit
        links: dict[str, Any] = {"self": {"href": f"{self.base_url}/v2/persons"}}
        if more:
            links["next"] = {"href": f"{self.base_url}/v2/persons?cursor={quote(_v2_cursor(page[-1].id))}"
                                     f"&limit={limit}"}
        return _json_answer(200, {"_data": [self._v2_person(person) for person in page], "_meta": {"links": links}})

    def _v2_person(self, person: Person) -> dict[str, Any]:
        person = self._served(person)
        readable = self.readable
        document: dict[str, Any] = {"id": str(person.id)}
        for name, value in (("email", person.email), ("first_name", person.first_name),
                            ("last_name", person.last_name),
                            ("preferred_name", f"{person.first_name} {person.last_name}")):
            if name in readable:
                document[name] = value
        if "status" in readable:
            document["status"] = _person_status(person)
        if "last_modified_at" in readable:
            document["updated_at"] = _iso_z(person.updated_at)
        written = self._written.get(person.id, {})
        custom = []
        for key, (kind, global_id) in V2_CUSTOM_ATTRIBUTES.items():
            if key not in readable:
                continue
            if key in written:
                value = written[key]
            elif key in (COMPETENCIES_KEY, REVIEW_RATING_KEY):
                value = person.competencies if key == COMPETENCIES_KEY else person.review_rating
            else:
                continue  # a write-back attribute nobody wrote yet
            custom.append({"id": key, "type": kind, "value": _v2_custom_value(kind, value), "global_id": global_id,
                           "label": V1_BY_KEY[key].label})
        if custom:
            document["custom_attributes"] = custom
        document["employments"] = [{"id": employment_id} for employment_id in _employment_ids(person)]
        document["_meta"] = {"links": {"employments": {
            "href": f"{self.base_url}/v2/persons/{person.id}/employments"}}}
        return document

    def _v2_employments(self, person: Person) -> list[dict[str, Any]]:
        readable = self.readable
        manager = self._manager(person, {}) if "supervisor" in readable else None
        current, *former = _employment_ids(person)
        documents = [self._v2_employment(person, current, readable, manager=manager, status=person.status,
                                         title=person.title, start=person.hire_date, end=None)]
        if former:
            started = date.fromisoformat(person.hire_date)
            documents.append(self._v2_employment(
                person, former[0], readable, manager=None, status="inactive", title="Working Student",
                start=(started - timedelta(days=365)).isoformat(), end=(started - timedelta(days=1)).isoformat()))
        return documents

    def _v2_employment(self, person: Person, employment_id: str, readable: frozenset[str], *,
                       manager: Person | None, status: str, title: str, start: str, end: str | None
                       ) -> dict[str, Any]:
        document: dict[str, Any] = {"id": employment_id, "person": {"id": str(person.id)}}
        fields: tuple[tuple[str, str, Any], ...] = (
            ("status", "status", status.upper()),
            ("position", "position", {"title": title}),
            ("supervisor", "supervisor", {"id": str(manager.id)} if manager is not None else None),
            ("office", "office", {"id": str(person.office_id)}),
            ("department", "org_units", [{"type": "department", "id": str(person.department_id)}]),
            ("hire_date", "employment_start_date", start),
            ("hire_date", "employment_end_date", end),
            ("employment_type", "type", "INTERNAL"),
            ("weekly_working_hours", "weekly_working_hours", 40),
            ("contract_end_date", "contract_end_date", None),
            ("last_modified_at", "updated_at", _iso_z(person.updated_at)),
        )
        for name, key, value in fields:
            if name in readable:
                document[key] = value
        links = {"person": {"href": f"{self.base_url}/v2/persons/{person.id}"}}
        if manager is not None:
            links["supervisor"] = {"href": f"{self.base_url}/v2/persons/{manager.id}"}
        document["_meta"] = {"links": links}
        return document

    # control endpoints

    def _control_reply(self, route: str, reply: dict[str, Any]) -> Answer:
        if route in ("change", "depart"):
            reply = {"indexes": reply[route]}
        return _json_answer(200, reply)  # hire too

    def _control_extra(self, route: str, document: dict[str, Any]) -> Answer | None:
        if route == "readable":
            names = document.get("attributes")
            self.set_readable(None if names is None else [str(name) for name in names])
            return _json_answer(200, {"attributes": sorted(self.readable)})
        if route == "revoke":
            self.revoke_tokens()
            return _json_answer(200, {})
        return None


def _v2_custom_value(kind: str, value: Any) -> str | list[str] | None:
    """A custom attribute's value as v2 sends it: a string (numbers and dates too), a list for STRING_LIST."""
    if value is None:
        return None
    if kind == "STRING_LIST":
        return str(value).split(",")
    return str(value)


def _person_status(person: Person) -> str:
    return "INACTIVE" if person.status == "inactive" else "ACTIVE"


def _employment_ids(person: Person) -> list[str]:
    ids = [str(uuid.uuid5(_EMPLOYMENT_NAMESPACE, f"{person.id}:current"))]
    if person.index % 25 == 3:
        ids.append(str(uuid.uuid5(_EMPLOYMENT_NAMESPACE, f"{person.id}:former")))
    return ids


# --- command line -----------------------------------------------------------------------------------------------


def _serve(args: argparse.Namespace) -> int:
    client_id, client_secret = DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET
    raw = os.environ.get(args.credentials_env)
    if raw:
        try:
            document = json.loads(raw)
            client_id, client_secret = str(document["client_id"]), str(document["client_secret"])
        except (ValueError, KeyError, TypeError):
            print(f"{args.credentials_env} must hold {{\"client_id\", \"client_secret\"}}", file=sys.stderr)
            return 2
    workforce = Workforce(args.employees, domain=args.domain, seed=args.seed)
    readable = [name.strip() for name in args.readable.split(",") if name.strip()] if args.readable else None
    standin = PersonioStandIn(workforce, client_id=client_id, client_secret=client_secret, port=args.port,
                              readable=readable)
    if args.rate_per_minute:
        standin.limit_rate(args.rate_per_minute)
    return serve_standin(standin, args, f"Personio stand-in on {{base_url}} with {args.employees} employees "
                                        f"(client id {client_id}); Ctrl-C stops it")


def _parser() -> argparse.ArgumentParser:
    parser, serve = command_line("python -m local.personio", "Local stand-in of Personio's v1 and v2 employee APIs",
                                 port=DEFAULT_PORT, employees=200, serve=_serve)
    serve.add_argument("--credentials-env", default=CREDENTIALS_ENV,
                       help="environment variable holding {\"client_id\", \"client_secret\"} (default "
                            f"{CREDENTIALS_ENV}; unset: {DEFAULT_CLIENT_ID} and the stand-in's default secret)")
    serve.add_argument("--readable", help="comma list of readable attributes (default: all)")
    serve.add_argument("--rate-per-minute", type=int, help="throttle data requests as Personio does (e.g. 300)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    return run_command(_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
