"""A local stand-in of Merge's unified HRIS API serving the employees of a ``Workforce`` (local/hrms_people.py).

Standard library HTTP server on 127.0.0.1 (keep-alive, one thread per connection). Merge's base is
``https://api.merge.dev/api/hris/v1``; here it is ``hris_base_url`` (``base_url + "/api/hris/v1"``), the value of
the tenant's base URL setting.

API endpoints (each needs ``Authorization: Bearer <api key>`` and ``X-Account-Token: <linked account token>``;
a missing or wrong one -> 401 ``{"detail": ...}``; Merge does not document which status a bad account token gets,
401 is an assumption). One stand-in serves one or more linked accounts (``link_account``), each its own Workforce.

- ``GET /api/hris/v1/employees`` -> ``{"next", "previous", "results": [Employee, ...]}`` in creation order.
  Query: ``cursor`` (the ``next`` / ``previous`` of an earlier answer; anything else -> 404 ``{"detail": "Invalid
  cursor"}``, as Django REST framework answers), ``page_size`` (1-100, default 100; larger is cut to 100, unusable
  values mean the default), ``expand`` (comma list of employments, groups, manager, work_location, home_location,
  company, pay_group, team; another value -> 400), ``modified_after`` / ``modified_before`` / ``created_after`` /
  ``created_before`` (ISO 8601, exclusive; malformed -> 400 ``{"<param>": ["Enter a valid date/time."]}``),
  ``include_deleted_data`` (employees deleted in the HRIS, ``remote_was_deleted: true``, are left out unless
  true), ``include_remote_data`` (``remote_data: [{"path", "data"}]``, else null), ``employment_status``,
  ``work_email``, ``remote_id``, ``manager_id``. Cursors are base64 of ``p=<created_at>`` (``r=1&p=...`` for
  previous), the position itself, so they stay valid in another process and across restarts.
- ``GET /api/hris/v1/employees/{id}`` (``expand``, ``include_remote_data``) -> one Employee; 404 ``{"detail":
  "Not found."}``.
- ``GET /api/hris/v1/linked-account-scopes`` -> ``{"common_models": [{"model_name": "Employee",
  "model_permissions": {"READ": {"is_enabled": true}, "WRITE": {"is_enabled": false}}, "field_permissions":
  {"enabled_fields": [...], "disabled_fields": [...]}}]}``: the account's ``disabled_fields``, which every Employee
  (the expanded manager too) serves as null, as Merge does for fields turned off in its Scopes.
- Anything else -> 404 ``{"detail": "Not found."}``; another method on a known path -> 405.

An Employee: ``id`` (a UUID derived from the Workforce's domain, seed and the person: the same in every process),
``remote_id`` (the Workforce id), ``created_at``, ``modified_at`` (the person's ``updated_at``, or when they were
deleted), ``employee_number``, ``company``, ``first_name``, ``last_name``, ``preferred_name``,
``display_full_name``, ``username``, ``groups`` (a TEAM group ``"<office> <department>"`` then the DEPARTMENT
group), ``work_email``, ``personal_email``, ``mobile_phone_number``, ``employments`` (one, with the job title),
``home_location``, ``work_location`` (the office), ``manager``, ``team``, ``pay_group``, ``ssn`` (always null: no
sensitive data here), ``gender``, ``ethnicity``, ``marital_status``, ``date_of_birth``, ``hire_date``,
``start_date`` (the hire date at midnight UTC), ``remote_created_at``, ``employment_status`` (onboarding ->
PENDING, active and leave -> ACTIVE: Merge's model has no leave, inactive -> INACTIVE), ``termination_date``
(inactive ones), ``avatar``, ``custom_fields`` (``{"competencies", "review_rating"}``), ``remote_was_deleted``,
``field_mappings``, ``remote_data``. Related objects are ids unless expanded into Merge's Employment, Group,
Location, Company and (unexpanded) Employee objects. Employees who ``depart`` stay, deleted.

Rate limit per linked account (``limit_rate``; Merge documents 100/400/600 a minute by plan): beyond it 429
``{"detail": "Request was throttled. Expected available in N seconds."}`` with ``Retry-After: N`` (Django REST
framework's throttling answer; Merge does not document its own).

Faults (API requests only): ``drop_next(count)`` reads the next requests and closes their connections without an
answer (logged with status 0); then authentication; then ``fail_next(status, count=, retry_after=,
path_contains=)`` answers with ``status`` and ``{"detail": ...}`` (``Retry-After`` only when given); then the rate
limit. ``clear_faults()`` forgets faults and drops and lifts the limit. ``requests_log`` (method, path with query,
status) and ``requests_count`` observe every API request.

Control endpoints (no auth, for a stand-in in another process; they act on the first linked account):
``POST /_standin/fail {"status", "count"?, "retry_after"?, "path_contains"?}``, ``DELETE /_standin/fail``,
``POST /_standin/drop {"count"}``, ``POST /_standin/rate {"per_minute": n | null}``, ``POST /_standin/change
{"indexes"}``, ``POST /_standin/depart {"indexes"}``, ``POST /_standin/hire {"count"}`` -> 201 ``{"indexes"}``,
``GET /_standin/requests`` -> ``{"requests": [[method, path, status], ...]}``. A malformed body -> 400.

Command line: ``python -m local.merge serve --port 7097 --employees 300 [--domain D] [--seed S]
[--disabled-field FIELD ...] [--per-minute 100] [--credential-env MERGE_STANDIN_CREDENTIAL]``; the credential is
read from the environment variable the option names (the connector's JSON: ``{"api_key", "account_token"}``),
never from argv; without it the defaults below.
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
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, unquote, urlencode, urlsplit

from local.hrms_people import Person, Workforce
from local.hrms_standin import Answer, EnvCredential, HrmsStandIn, command_line, run_command, serve_standin

DEFAULT_PORT = 7097
DEFAULT_API_KEY = "merge-local-api-key"
DEFAULT_ACCOUNT_TOKEN = "merge-local-account-token"  # noqa: S105 - a local stand-in's well-known default
DEFAULT_CREDENTIAL_ENV = "MERGE_STANDIN_CREDENTIAL"
LOWEST_PLAN_PER_MINUTE = 100
HRIS_PREFIX = "/api/hris/v1"
MAX_PAGE_SIZE = 100
EXPANDABLE = ("employments", "groups", "manager", "work_location", "home_location", "company", "pay_group", "team")
EMPLOYEE_FIELDS = (
    "id", "remote_id", "created_at", "modified_at", "employee_number", "company", "first_name", "last_name",
    "preferred_name", "display_full_name", "username", "groups", "work_email", "personal_email",
    "mobile_phone_number", "employments", "home_location", "work_location", "manager", "team", "pay_group", "ssn",
    "gender", "ethnicity", "marital_status", "date_of_birth", "hire_date", "start_date", "remote_created_at",
    "employment_status", "termination_date", "avatar", "custom_fields", "remote_was_deleted", "field_mappings",
    "remote_data")
EMPLOYMENT_STATUS = {"onboarding": "PENDING", "active": "ACTIVE", "leave": "ACTIVE", "inactive": "INACTIVE"}
REMOTE_STATUS = {"onboarding": "Hired", "active": "Active", "leave": "On leave", "inactive": "Terminated"}
COUNTRIES = {"Berlin": "DE", "Munich": "DE", "London": "GB"}
_NAMESPACE = uuid.UUID("3b0c3f4e-8a51-4a7e-9a53-2f1d6c0e7b21")  # of the ids this stand-in derives
_TRUE = ("true", "True", "1")


def _iso(moment: datetime) -> str:
    """Merge's form: ISO 8601 in UTC with a ``Z``."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _field_mappings() -> dict[str, dict]:
    return {"organization_defined_targets": {}, "linked_account_defined_targets": {}}


# --- refusals ----------------------------------------------------------------------------------------------------


class _Refused(Exception):
    def __init__(self, status: int, payload: Any, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(str(payload))
        self.status, self.payload, self.headers = status, payload, dict(headers or {})


def _detail(status: int, detail: str, headers: Mapping[str, str] | None = None) -> _Refused:
    return _Refused(status, {"detail": detail}, headers)


def _encode_cursor(position: datetime, *, reverse: bool = False) -> str:
    query = urlencode({"r": "1", "p": str(position)} if reverse else {"p": str(position)})
    return base64.b64encode(query.encode()).decode("ascii")


def _decode_cursor(cursor: str) -> tuple[datetime, bool]:
    try:
        query = parse_qs(base64.b64decode(cursor, validate=True).decode(), strict_parsing=True)
        position = datetime.fromisoformat(query["p"][0])
        reverse = query.get("r", ["0"])[0] == "1"
    except (binascii.Error, UnicodeDecodeError, ValueError, KeyError):
        raise _detail(404, "Invalid cursor") from None
    if position.tzinfo is None:
        raise _detail(404, "Invalid cursor")
    return position, reverse


# --- linked accounts ----------------------------------------------------------------------------------------------


@dataclass
class _Account:
    token: str
    workforce: Workforce
    disabled_fields: frozenset[str]
    initial_size: int
    created: dict[int, datetime] = field(default_factory=dict)  # hires: when this stand-in first served them
    deleted: dict[int, datetime] = field(default_factory=dict)  # departures: when they were noticed

    def derived_id(self, kind: str, key: object) -> str:
        workforce = self.workforce
        return str(uuid.uuid5(_NAMESPACE, f"{workforce.domain}|{workforce.seed}|{workforce.first_id}|{kind}|{key}"))

    def created_at(self, index: int) -> datetime:
        if index < self.initial_size:
            return self.workforce.epoch + timedelta(seconds=index)
        return self.created[index]

    def notice(self) -> set[int]:
        """Record first-seen times of hires and deletion times of departures; the present indexes."""
        present = set(self.workforce.indexes())
        now = datetime.now(UTC)
        for index in range(self.workforce.size):
            if index >= self.initial_size and index not in self.created:
                # Strictly increasing, so that creation order (the cursor's position) never ties.
                latest = max(self.created.values(), default=self.workforce.epoch)
                self.created[index] = max(now, latest + timedelta(microseconds=1),
                                          self.workforce.epoch + timedelta(seconds=index))
            if index not in present and index not in self.deleted:
                self.deleted[index] = now
        return present


# --- the stand-in -------------------------------------------------------------------------------------------------


class MergeStandIn(HrmsStandIn):
    """Merge's HRIS employees API on http://127.0.0.1; see the module docstring."""

    thread_name = "Merge stand-in"
    log_name = "merge stand-in"

    def __init__(self, workforce: Workforce, *, api_key: str = DEFAULT_API_KEY,
                 account_token: str = DEFAULT_ACCOUNT_TOKEN, disabled_fields: Iterable[str] = (),
                 per_minute: int | None = None, port: int = 0) -> None:
        super().__init__(port=port)
        self.api_key = api_key
        self._accounts: dict[str, _Account] = {}
        self.account_token = account_token
        self.link_account(account_token, workforce, disabled_fields=disabled_fields)
        self.limit_rate(per_minute)  # per linked account

    @property
    def hris_base_url(self) -> str:
        """The tenant's base URL setting for this stand-in (Merge's https://api.merge.dev/api/hris/v1)."""
        return self.base_url + HRIS_PREFIX

    @property
    def workforce(self) -> Workforce:
        return self._account(None).workforce

    def credential(self, account_token: str | None = None) -> str:
        """The connector's credential JSON for a linked account (the first one by default)."""
        return json.dumps({"api_key": self.api_key, "account_token": account_token or self.account_token})

    def link_account(self, account_token: str, workforce: Workforce, *, disabled_fields: Iterable[str] = ()) -> None:
        """Serve ``workforce`` to requests with this ``X-Account-Token`` (fields in ``disabled_fields`` are null)."""
        disabled = frozenset(disabled_fields)
        unknown = disabled - set(EMPLOYEE_FIELDS)
        if unknown:
            raise ValueError(f"not Employee fields: {sorted(unknown)}")
        with self._lock:
            self._accounts[account_token] = _Account(account_token, workforce, disabled, workforce.size)

    def _account(self, account_token: str | None) -> _Account:
        with self._lock:
            return self._accounts[account_token or self.account_token]

    def employee_id(self, person_id: int, account_token: str | None = None) -> str:
        """The Merge id this stand-in gives the Workforce employee with ``person_id``."""
        return self._account(account_token).derived_id("employee", person_id)

    def group_id(self, kind: str, key: object, account_token: str | None = None) -> str:
        return self._account(account_token).derived_id(f"group:{kind}", key)

    # the workforce, for tests and the control endpoints

    def change(self, indexes: Iterable[int], account_token: str | None = None) -> None:
        self._account(account_token).workforce.change(list(indexes))

    def depart(self, indexes: Iterable[int], account_token: str | None = None) -> None:
        """These employees are deleted in the HRIS: Merge keeps them with ``remote_was_deleted`` true."""
        account = self._account(account_token)
        chosen = list(indexes)
        now = datetime.now(UTC)
        with self._lock:
            for index in chosen:
                account.deleted.setdefault(index, now)
        account.workforce.depart(chosen)

    def hire(self, count: int, account_token: str | None = None) -> list[int]:
        return self._account(account_token).workforce.hire(count)

    # HTTP

    def _api_answer(self, method: str, target: str, headers: Mapping[str, str], body: bytes) -> Answer:
        parts = urlsplit(target)
        try:
            return self._api(method, parts.path, parse_qs(parts.query, keep_blank_values=True), headers)
        except _Refused as refused:
            return Answer.json(refused.status, refused.payload, refused.headers)

    def _failure_answer(self) -> Answer:
        return Answer.json(500, {"detail": "stand-in failure"})

    def _api(self, method: str, path: str, query: Mapping[str, list[str]], headers: Mapping[str, str]) -> Answer:
        route = [unquote(part) for part in path.removeprefix(HRIS_PREFIX).strip("/").split("/")]
        known = path.startswith(HRIS_PREFIX + "/") and (
            route in (["employees"], ["linked-account-scopes"]) or (len(route) == 2 and route[0] == "employees"))
        if not known:
            raise _detail(404, "Not found.")
        account = self._authenticate(headers)
        self._inject_fault(path)
        self._admit(account)
        if method != "GET":
            raise _detail(405, f'Method "{method}" not allowed.')
        if route == ["linked-account-scopes"]:
            return Answer.json(200, self._scopes(account))
        expand = self._expand(query)
        remote_data = _flag(query, "include_remote_data")
        if len(route) == 2:
            return Answer.json(200, self._retrieve(account, route[1], expand, remote_data))
        return Answer.json(200, self._list(account, query, expand, remote_data))

    def _authenticate(self, headers: Mapping[str, str]) -> _Account:
        scheme, _, key = (headers.get("Authorization") or "").strip().partition(" ")
        if not scheme:
            raise _detail(401, "Authentication credentials were not provided.")
        if scheme.lower() != "bearer" or not hmac.compare_digest(key.strip().encode(), self.api_key.encode()):
            raise _detail(401, "Invalid token.")
        token = (headers.get("X-Account-Token") or "").strip()
        with self._lock:
            account = next((found for known, found in self._accounts.items()
                            if hmac.compare_digest(known.encode(), token.encode())), None)
        if account is None:
            raise _detail(401, "Invalid or missing X-Account-Token.")
        return account

    def _inject_fault(self, path: str) -> None:
        fault = self._plan.take_fault(path)
        if fault is None:
            return
        headers = fault.retry_after_headers()
        if fault.status == 429:
            wait = "" if fault.retry_after is None else \
                f" Expected available in {math.ceil(fault.retry_after)} seconds."
            raise _detail(429, f"Request was throttled.{wait}", headers)
        raise _detail(fault.status, f"{HTTPStatus(fault.status).phrase} (a fault injected by the stand-in)", headers)

    def _admit(self, account: _Account) -> None:
        """Count a call against its linked account's limit: DRF's throttling answer beyond it."""
        throttle = self._plan.admit(account.token)
        if throttle is None or throttle.admitted:
            return
        wait = throttle.wait
        raise _detail(429, f"Request was throttled. Expected available in {wait} seconds.", {"Retry-After": str(wait)})

    # the model

    @staticmethod
    def _expand(query: Mapping[str, list[str]]) -> frozenset[str]:
        raw = (query.get("expand") or [""])[0]
        chosen = frozenset(part for part in raw.split(",") if part)
        unknown = chosen - set(EXPANDABLE)
        if unknown:
            raise _Refused(400, {"expand": [f"Not a relation that can be expanded: {', '.join(sorted(unknown))}"]})
        return chosen

    def _scopes(self, account: _Account) -> dict[str, Any]:
        return {"common_models": [{
            "model_name": "Employee",
            "model_permissions": {"READ": {"is_enabled": True}, "WRITE": {"is_enabled": False}},
            "field_permissions": {"enabled_fields": [name for name in EMPLOYEE_FIELDS
                                                     if name not in account.disabled_fields],
                                  "disabled_fields": sorted(account.disabled_fields)}}]}

    def _retrieve(self, account: _Account, employee_id: str, expand: frozenset[str], remote_data: bool) -> dict:
        with self._lock:
            present = account.notice()
            for index in range(account.workforce.size):
                if account.derived_id("employee", account.workforce.first_id + index) == employee_id:
                    return self._employee(account, index, index not in present, expand, remote_data)
        raise _detail(404, "Not found.")

    def _list(self, account: _Account, query: Mapping[str, list[str]], expand: frozenset[str],
              remote_data: bool) -> dict[str, Any]:
        bounds = {name: _moment(query, name) for name in
                  ("modified_after", "modified_before", "created_after", "created_before")}
        size = _page_size(query)
        cursor = (query.get("cursor") or [""])[0]
        position, reverse = _decode_cursor(cursor) if cursor else (None, False)
        include_deleted = _flag(query, "include_deleted_data")
        keep = self._filters(account, query)
        with self._lock:
            present = account.notice()
            rows: list[tuple[datetime, int, bool]] = []
            for index in range(account.workforce.size):
                deleted = index not in present
                if deleted and not include_deleted:
                    continue
                person = account.workforce.person(index)
                created, modified = self._moments(account, index, person)
                if not _within(created, bounds["created_after"], bounds["created_before"]) or \
                        not _within(modified, bounds["modified_after"], bounds["modified_before"]) or \
                        not keep(person):
                    continue
                rows.append((created, index, deleted))
            rows.sort()
            positions = [row[0] for row in rows]
            if position is None:
                start, end = 0, min(size, len(rows))
            elif not reverse:
                start = _bisect_right(positions, position)
                end = min(start + size, len(rows))
            else:
                end = _bisect_left(positions, position)
                start = max(0, end - size)
            chosen = rows[start:end]
            results = [self._employee(account, index, deleted, expand, remote_data) for _, index, deleted in chosen]
        return {"next": _encode_cursor(chosen[-1][0]) if chosen and end < len(rows) else None,
                "previous": _encode_cursor(chosen[0][0], reverse=True) if chosen and start > 0 else None,
                "results": results}

    def _filters(self, account: _Account, query: Mapping[str, list[str]]) -> Callable[[Person], bool]:
        status = (query.get("employment_status") or [""])[0]
        if status and status not in ("ACTIVE", "PENDING", "INACTIVE"):
            raise _Refused(400, {"employment_status": [f'"{status}" is not a valid choice.']})
        email = (query.get("work_email") or [""])[0].lower()
        remote_id = (query.get("remote_id") or [""])[0]
        manager_id = (query.get("manager_id") or [""])[0]
        workforce = account.workforce

        def keep(person: Person) -> bool:
            manager = None if person.manager_index is None else workforce.first_id + person.manager_index
            return (not status or EMPLOYMENT_STATUS[person.status] == status) and \
                (not email or person.email.lower() == email) and (not remote_id or str(person.id) == remote_id) and \
                (not manager_id or (manager is not None and account.derived_id("employee", manager) == manager_id))

        return keep

    @staticmethod
    def _moments(account: _Account, index: int, person: Person) -> tuple[datetime, datetime]:
        created = account.created_at(index)
        modified = max(created, person.updated_at, account.deleted.get(index, created))
        return created, modified

    def _employee(self, account: _Account, index: int, deleted: bool, expand: frozenset[str], remote_data: bool,
                  *, nested: bool = False) -> dict[str, Any]:
        workforce = account.workforce
        person = workforce.person(index)
        created, modified = self._moments(account, index, person)
        manager = None if person.manager_index is None else workforce.person(person.manager_index)
        hired = f"{person.hire_date}T00:00:00Z"
        document: dict[str, Any] = {
            "id": account.derived_id("employee", person.id),
            "remote_id": str(person.id),
            "created_at": _iso(created),
            "modified_at": _iso(modified),
            "employee_number": str(person.id),
            "company": account.derived_id("company", "main"),
            "first_name": person.first_name,
            "last_name": person.last_name,
            "preferred_name": None,
            "display_full_name": f"{person.first_name} {person.last_name}",
            "username": person.email.split("@", 1)[0],
            "groups": [account.derived_id("group:team", (person.office_id, person.department_id)),
                       account.derived_id("group:department", person.department_id)],
            "work_email": person.email,
            "personal_email": None,
            "mobile_phone_number": None,
            "employments": [account.derived_id("employment", person.id)],
            "home_location": None,
            "work_location": account.derived_id("location", person.office_id),
            "manager": None if manager is None else account.derived_id("employee", manager.id),
            "team": None,
            "pay_group": None,
            "ssn": None,
            "gender": None,
            "ethnicity": None,
            "marital_status": None,
            "date_of_birth": None,
            "hire_date": hired,
            "start_date": hired,
            "remote_created_at": hired,
            "employment_status": EMPLOYMENT_STATUS[person.status],
            "termination_date": _iso(workforce.epoch - timedelta(days=1)) if person.status == "inactive" else None,
            "avatar": None,
            "custom_fields": {"competencies": person.competencies, "review_rating": person.review_rating},
            "remote_was_deleted": deleted,
            "field_mappings": _field_mappings(),
            "remote_data": [{"path": f"/v1/employees/{person.id}",
                             "data": {"id": person.id, "email": person.email, "status": REMOTE_STATUS[person.status],
                                      "title": person.title}}] if remote_data else None,
        }
        for name in account.disabled_fields:
            document[name] = None
        if not nested:
            self._expand_into(document, account, person, manager, expand)
        return document

    def _expand_into(self, document: dict[str, Any], account: _Account, person: Person, manager: Person | None,
                     expand: frozenset[str]) -> None:
        """Related ids become objects for the relations asked for (a disabled field stays null)."""
        def enabled(name: str) -> bool:
            return name in expand and document[name] is not None

        stamp = _iso(account.workforce.epoch)
        common = {"created_at": stamp, "modified_at": stamp}
        tail = {"remote_was_deleted": False, "field_mappings": _field_mappings(), "remote_data": None}
        if enabled("employments"):
            document["employments"] = [{
                "id": document["employments"][0], "remote_id": f"employment-{person.id}", **common,
                "modified_at": _iso(person.updated_at), "employee": document["id"], "job_title": person.title,
                "pay_rate": None, "pay_period": None, "pay_frequency": None, "pay_currency": None, "pay_group": None,
                "flsa_status": None, "effective_date": document["hire_date"], "employment_type": "FULL_TIME", **tail}]
        if enabled("groups"):
            team_id, department_id = document["groups"]
            document["groups"] = [
                {"id": team_id, "remote_id": f"team-{person.office_id}-{person.department_id}", **common,
                 "parent_group": department_id, "name": f"{person.office} {person.department}", "type": "TEAM",
                 "is_commonly_used_as_team": True, **tail},
                {"id": department_id, "remote_id": f"department-{person.department_id}", **common,
                 "parent_group": None, "name": person.department, "type": "DEPARTMENT",
                 "is_commonly_used_as_team": False, **tail}]
        if enabled("work_location"):
            document["work_location"] = {
                "id": document["work_location"], "remote_id": f"office-{person.office_id}", **common,
                "name": person.office, "phone_number": None, "street_1": None, "street_2": None,
                "city": None if person.office == "Remote" else person.office, "state": None, "zip_code": None,
                "country": COUNTRIES.get(person.office), "location_type": "WORK", **tail}
        if enabled("company"):
            document["company"] = {"id": document["company"], "remote_id": "company", **common,
                                   "legal_name": account.workforce.domain, "display_name": account.workforce.domain,
                                   "eins": [], **tail}
        if enabled("manager") and manager is not None:
            document["manager"] = self._employee(account, manager.index, manager.index in account.deleted,
                                                 frozenset(), False, nested=True)


def _flag(query: Mapping[str, list[str]], name: str) -> bool:
    return (query.get(name) or [""])[0] in _TRUE


def _page_size(query: Mapping[str, list[str]]) -> int:
    raw = (query.get("page_size") or [""])[0]
    try:
        size = int(raw)
    except ValueError:
        return MAX_PAGE_SIZE
    return MAX_PAGE_SIZE if size < 1 else min(size, MAX_PAGE_SIZE)


def _moment(query: Mapping[str, list[str]], name: str) -> datetime | None:
    raw = (query.get(name) or [""])[0]
    if not raw:
        return None
    try:
        moment = datetime.fromisoformat(raw.replace(" ", "+"))  # an unencoded "+" arrives as a space
    except ValueError:
        raise _Refused(400, {name: ["Enter a valid date/time."]}) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def _within(moment: datetime, after: datetime | None, before: datetime | None) -> bool:
    return (after is None or moment > after) and (before is None or moment < before)


def _bisect_right(positions: list[datetime], position: datetime) -> int:
    return next((index for index, value in enumerate(positions) if value > position), len(positions))


def _bisect_left(positions: list[datetime], position: datetime) -> int:
    return next((index for index, value in enumerate(positions) if value >= position), len(positions))


# --- command line -------------------------------------------------------------------------------------------------


_CREDENTIAL = EnvCredential(DEFAULT_CREDENTIAL_ENV, ("api_key", "account_token"),
                            (DEFAULT_API_KEY, DEFAULT_ACCOUNT_TOKEN))


def _serve(args: argparse.Namespace) -> int:
    try:
        api_key, account_token = _CREDENTIAL.read(args.credential_env)
    except ValueError as error:
        print(f"cannot read the credential: {error}", file=sys.stderr)
        return 2
    workforce = Workforce(args.employees, domain=args.domain, seed=args.seed)
    try:
        standin = MergeStandIn(workforce, api_key=api_key, account_token=account_token,
                               disabled_fields=args.disabled_field, per_minute=args.per_minute or None,
                               port=args.port)
    except ValueError as error:
        print(str(error), file=sys.stderr)
        return 2
    source = f"${args.credential_env}" if os.environ.get(args.credential_env) else "the defaults of local/merge.py"
    return serve_standin(standin, args,
                         f"Merge stand-in on {{base_url}} with {args.employees} employees; Ctrl-C stops it\n"
                         f"  connector base URL {{base_url}}{HRIS_PREFIX} (credential from {source})")


def _parser() -> argparse.ArgumentParser:
    parser, serve = command_line("python -m local.merge", "Local stand-in of Merge's unified HRIS API",
                                 port=DEFAULT_PORT, employees=50, serve=_serve)
    serve.add_argument("--disabled-field", action="append", default=[], metavar="FIELD",
                       help="an Employee field turned off in the linked account's Scopes (repeatable)")
    serve.add_argument("--per-minute", type=int, default=LOWEST_PLAN_PER_MINUTE,
                       help="calls allowed a minute per linked account (0: no limit; Merge's Launch plan: 100)")
    _CREDENTIAL.add_option(serve)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    return run_command(_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
