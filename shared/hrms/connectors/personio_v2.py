"""Personio through its v2 persons and employments API (kind ``personio-v2``).

Settings and credential as for v1 (personio.py): ``base_url`` is Personio's API root, the credential is
``{"client_id", "client_secret"}``. Tokens come from ``POST /v2/auth/token`` (form-encoded client credentials
grant; 86400 s) and are cached in ``base.TOKENS`` under (kind, base URL, client id); Personio answers wrong
credentials there with 400 ``invalid_client`` / ``unauthorized_client``, which is a refused credential here too.

A page costs 1 + N requests:

- ``GET /v2/persons?limit=50[&cursor=][&updated_at.gt=<UTC ISO Z>]`` (50: the maximum): the cursor is Personio's
  own (the ``cursor`` of ``_meta.links.next.href``; None when there is no next link), so a stored one continues
  where the last page ended even in another process. A cursor Personio no longer accepts (400) is a
  non-retryable ConnectorError: start over from None.
- ``GET /v2/persons/{id}/employments?limit=50`` for each person with an employment, fetched on a small thread
  pool through the connector's one OutboundClient (httpx clients are thread-safe; retries, Retry-After and
  pacing stay per request, and with pacing on the requests still go out one interval apart).
- ``GET /v2/org-units/{id}?type=department`` once per department per connector instance (cached; a 404 is
  remembered as no name).

Mapping into ``Employee``: hrms_id = the person's id; email, first_name, last_name from the person; the
employment used is the first current one (ACTIVE, LEAVE, ONBOARDING) in Personio's order (most recent first),
else the most recent: job_title = position.title, department = the name of its ``department`` org unit,
manager_hrms_id = supervisor.id, status = its status in lower case (else the person's ACTIVE/INACTIVE, else
active), start_date = employment_start_date. Not available in v2: location (employments carry only an office
id, and v2 has no endpoint for office names) and manager_email (the supervisor is only an id): both None.
``attributes``: the person's fields by name (objects flattened one level: ``profile_picture.url``), custom
attributes by their id (``dynamic_<id>``; INT, DOUBLE and BOOLEAN values, which Personio sends as strings,
as numbers and booleans), and the employment's fields under ``employment.`` (``employment.position.title``,
``employment.supervisor.id``, ``employment.office.id``, ``employment.org_units`` as a list, ...). There is no
attribute metadata endpoint in v2: ``attributes()`` reads the first persons page and the employments of up to
three of its persons and lists the names they carry (person fields, custom attribute ids, employment fields).

Incremental: ``updated_at.gt`` filters on the person's ``updated_at``; a change made only to an employment
(title, department, supervisor, status) may not move it, so a periodic full sync is still needed.

Errors as for v1; the documented v2 rate limits are those of the token endpoint (150 per minute); the data
endpoints' limits are not published, so ``requests_per_minute`` (300) mirrors v1's employees endpoint.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any, ClassVar
from urllib.parse import parse_qs, quote, urlsplit

from shared.hrms.connectors.base import ConnectorError, ConnectorSettings, Employee, Page
from shared.hrms.connectors.personio import STATUSES, PersonioApiBase, date_part, text, utc

EMPLOYMENT_WORKERS = 8
_CURRENT = ("ACTIVE", "LEAVE", "ONBOARDING")
_PERSON_SKIP = frozenset({"custom_attributes", "employments", "_meta"})
_EMPLOYMENT_SKIP = frozenset({"_meta", "person"})
# Object fields of an employment (and their keys) whose names stay listed when the value is null.
_OBJECT_FIELDS = {"position": ("title",), "supervisor": ("id",), "office": ("id",), "legal_entity": ("id",),
                  "job": ("id",), "sub_company": ("id",), "profile_picture": ("url",)}
_REFUSED_GRANTS = frozenset({"invalid_client", "unauthorized_client", "invalid_grant", "access_denied",
                             "invalid_scope"})


def _flatten(prefix: str, document: dict[str, Any], skip: frozenset[str]) -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in document.items():
        if key in skip:
            continue
        if type(value) is dict:
            for sub, sub_value in value.items():
                flat[f"{prefix}{key}.{sub}"] = sub_value
        elif value is None and key in _OBJECT_FIELDS:
            for sub in _OBJECT_FIELDS[key]:
                flat[f"{prefix}{key}.{sub}"] = None
        else:
            flat[prefix + key] = value
    return flat


def _custom_value(kind: Any, value: Any) -> Any:
    """Personio sends every custom value as a string (or a list): numbers and booleans as what they are."""
    if not isinstance(value, str) or not isinstance(kind, str):
        return value
    kind = kind.upper()
    try:
        if kind == "INT":
            return int(value)
        if kind == "DOUBLE":
            return float(value)
    except ValueError:
        return value
    if kind == "BOOLEAN" and value.lower() in ("true", "false"):
        return value.lower() == "true"
    return value


def _custom_attributes(person: dict[str, Any]) -> dict[str, Any]:
    custom: dict[str, Any] = {}
    entries = person.get("custom_attributes")
    for entry in entries if type(entries) is list else ():
        if type(entry) is dict and isinstance(entry.get("id"), str):
            custom[entry["id"]] = _custom_value(entry.get("type"), entry.get("value"))
    return custom


def _main_employment(employments: list[Any]) -> dict[str, Any] | None:
    candidates = [employment for employment in employments if type(employment) is dict]
    for employment in candidates:
        if employment.get("status") in _CURRENT:
            return employment
    return candidates[0] if candidates else None


def _department_id(employment: dict[str, Any] | None) -> str | None:
    units = employment.get("org_units") if employment else None
    for unit in units if type(units) is list else ():
        if type(unit) is dict and unit.get("type") == "department" and unit.get("id") is not None:
            return str(unit["id"])
    return None


def _status(employment: dict[str, Any] | None, person: dict[str, Any]) -> str:
    status = employment.get("status") if employment else None
    if isinstance(status, str) and status.lower() in STATUSES:
        return status.lower()
    return "inactive" if person.get("status") == "INACTIVE" else "active"


class PersonioV2Connector(PersonioApiBase):
    """Personio v2: see the module docstring."""

    kind: ClassVar[str] = "personio-v2"
    supports_incremental: ClassVar[bool] = True
    requests_per_minute: ClassVar[int] = 300  # unpublished for v2 data endpoints: v1's employees limit
    api_name: ClassVar[str] = "Personio (v2)"
    PAGE_SIZE: ClassVar[int] = 50  # the maximum of limit on /v2/persons

    def __init__(self, settings: ConnectorSettings, *, page_size: int = PAGE_SIZE,
                 sleep: Callable[[float], None] = time.sleep, workers: int = EMPLOYMENT_WORKERS) -> None:
        super().__init__(settings, sleep=sleep)
        if not 1 <= page_size <= self.PAGE_SIZE:
            raise ValueError(f"page_size must be 1..{self.PAGE_SIZE}")
        self.page_size = page_size
        self.workers = max(1, workers)
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()
        self._department_names: dict[str, str | None] = {}

    def _authenticate(self) -> tuple[str, float]:
        response = self.send("POST", "/v2/auth/token", data={
            "grant_type": "client_credentials", "client_id": self._client_id, "client_secret": self._client_secret,
        }, idempotent=True)
        if response.status_code in (401, 403):
            raise self.refused()
        if response.status_code == 400:
            body = self.parse(response)
            if isinstance(body, dict) and body.get("error") in _REFUSED_GRANTS:
                raise self.refused()
            raise self.unexpected(response)
        if response.status_code != 200:
            raise self.unexpected(response)
        document = self.parse(response)
        token = document.get("access_token") if isinstance(document, dict) else None
        if not isinstance(token, str) or not token:
            raise self.malformed("the token answer has no access_token")
        expires_in = document.get("expires_in")
        return token, float(expires_in) if isinstance(expires_in, int | float) else 86400.0

    def close(self) -> None:
        with self._pool_lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)
        super().close()

    # pages

    def _persons(self, cursor: str | None, changed_since: datetime | None, limit: int) -> tuple[list[Any], str | None]:
        params: dict[str, Any] = {"limit": limit}
        if cursor:
            params["cursor"] = cursor
        if changed_since is not None:
            params["updated_at.gt"] = utc(changed_since).strftime("%Y-%m-%dT%H:%M:%SZ")
        document = self.get_json("/v2/persons", params)
        persons = document.get("_data") if isinstance(document, dict) else None
        if type(persons) is not list:
            raise self.malformed("the persons list has no _data")
        return persons, _next_cursor(document)

    def _employments(self, person_id: str) -> list[Any]:
        document = self.get_json(f"/v2/persons/{quote(person_id, safe='')}/employments", {"limit": 50},
                                 missing_ok=True)  # a person deleted since the persons page: no employment
        data = document.get("_data") if isinstance(document, dict) else None
        return data if type(data) is list else []

    def _employments_of(self, persons: list[dict[str, Any]]) -> list[list[Any]]:
        """The employments of each person, fetched concurrently; none asked for persons that list none."""
        wanted = [str(person["id"]) for person in persons if person.get("employments") != []]
        if len(wanted) > 1 and self.workers > 1:
            with self._pool_lock:
                if self._pool is None:
                    self._pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="personio-v2")
                pool = self._pool
            fetched = dict(zip(wanted, pool.map(self._employments, wanted), strict=True))
        else:
            fetched = {person_id: self._employments(person_id) for person_id in wanted}
        return [fetched.get(str(person["id"]), []) for person in persons]

    def _department_name(self, unit_id: str) -> str | None:
        if unit_id not in self._department_names:
            unit = self.get_json(f"/v2/org-units/{quote(unit_id, safe='')}", {"type": "department"},
                                 missing_ok=True)
            self._department_names[unit_id] = text(unit.get("name")) if isinstance(unit, dict) else None
        return self._department_names[unit_id]

    def page(self, cursor: str | None, *, changed_since: datetime | None = None) -> Page:
        persons, next_cursor = self._persons(cursor, changed_since, self.page_size)
        if any(type(person) is not dict or person.get("id") is None for person in persons):
            raise self.malformed("a person without id")
        employments = self._employments_of(persons)
        mains = [_main_employment(found) for found in employments]
        # Sequentially, after the employments: each department is fetched once per connector instance.
        for employment in mains:
            unit_id = _department_id(employment)
            if unit_id is not None:
                self._department_name(unit_id)
        return Page([self._employee(person, main) for person, main in zip(persons, mains, strict=True)],
                    next_cursor)

    def _employee(self, person: dict[str, Any], employment: dict[str, Any] | None) -> Employee:
        attributes = _flatten("", person, _PERSON_SKIP)
        attributes.update(_custom_attributes(person))
        if employment is not None:
            attributes.update(_flatten("employment.", employment, _EMPLOYMENT_SKIP))
        position = employment.get("position") if employment else None
        supervisor = employment.get("supervisor") if employment else None
        manager_id = supervisor.get("id") if type(supervisor) is dict else None
        unit_id = _department_id(employment)
        return Employee(
            hrms_id=str(person["id"]),
            email=text(person.get("email")),
            first_name=text(person.get("first_name")),
            last_name=text(person.get("last_name")),
            job_title=text(position.get("title")) if type(position) is dict else None,
            department=self._department_names.get(unit_id) if unit_id is not None else None,
            location=None,
            manager_hrms_id=str(manager_id) if manager_id is not None else None,
            manager_email=None,
            status=_status(employment, person),
            start_date=date_part(employment.get("employment_start_date")) if employment else None,
            attributes=attributes,
        )

    def attributes(self) -> list[str]:
        persons, _ = self._persons(None, None, self.PAGE_SIZE)
        persons = [person for person in persons if type(person) is dict and person.get("id") is not None]
        names: dict[str, None] = {"id": None}
        for person in persons:
            names.update(dict.fromkeys(_flatten("", person, _PERSON_SKIP)))
            names.update(dict.fromkeys(_custom_attributes(person)))
        sampled = [person for person in persons if person.get("employments") != []][:3]
        for found in self._employments_of(sampled):
            for employment in found:
                if type(employment) is dict:
                    names.update(dict.fromkeys(_flatten("employment.", employment, _EMPLOYMENT_SKIP)))
        return list(names)


def _next_cursor(document: dict[str, Any]) -> str | None:
    meta = document.get("_meta")
    links = meta.get("links") if type(meta) is dict else None
    next_link = links.get("next") if type(links) is dict else None
    href = next_link.get("href") if type(next_link) is dict else None
    if not isinstance(href, str) or not href:
        return None
    # Only the cursor is taken from the link: the request is built against our own base URL and filters.
    cursor = parse_qs(urlsplit(href).query).get("cursor", [""])[0]
    if not cursor:
        raise ConnectorError("Personio (v2) sent a next link without a cursor", retryable=False)
    return cursor


def connect(settings: ConnectorSettings) -> PersonioV2Connector:
    return PersonioV2Connector(settings)
