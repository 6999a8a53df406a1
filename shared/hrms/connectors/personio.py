"""Personio through its v1 personnel data API (kind ``personio``), and what the v2 connector (personio_v2.py)
shares with it: the outbound client, the token, the error mapping.

Settings: ``base_url`` is Personio's API root (``https://api.personio.de``; a trailing ``/v1`` or ``/v2`` is
ignored). The credential is a JSON object ``{"client_id": "papi-...", "client_secret": "papi-..."}``: an API
credential made under Settings > Integrations > API credentials, whose readable attributes (the whitelist) decide
what ``attributes()`` lists and pages carry.

Calls (all through one ``OutboundClient`` per connector, built on first use):

- ``POST /v1/auth`` with the credential in a JSON body (never the query string, which Personio refuses) ->
  a token, kept in ``base.TOKENS`` under (kind, base URL, client id) for its ``expires_in`` (86400 s). A 401 or 403
  on a data call forgets it and authenticates once more; a second refusal is a ConnectorError.
- ``page(cursor, changed_since=None)`` -> ``GET /v1/company/employees?limit=100&offset=<cursor>`` (100: the
  documented maximum) and ``updated_since=<UTC, YYYY-MM-DDTHH:MM:SS>`` on every page of an incremental sync
  (Personio documents no time zone for it; the value is truncated to the second, so the window only ever grows).
  The cursor is the offset of the next page as a decimal string (None: the first page); the next one is None once
  offset + the employees served reach ``metadata.total_elements``. Personio's reference says ``updated_since``
  makes ``limit`` and ``offset`` ignored (every match in one answer), a public report says they page as usual:
  both are handled (the answer's ``offset`` says where its data starts; what precedes the cursor is skipped).
- ``attributes()`` -> ``GET /v1/company/employees/attributes``: ``id`` (always served) and every listed key.

Mapping into ``Employee``: hrms_id = str(id); email, first_name, last_name; job_title = position; department
and location = the names of the department and office objects; manager_hrms_id and manager_email from the
supervisor's short record (its email only when the credential reads email); status = status when one of
onboarding / active / leave / inactive (missing or unknown: active); start_date = the first ten characters of
hire_date (Personio sends local midnight with an offset, ``2014-11-09T00:00:00+01:00``: converting to UTC would
give the day before). ``attributes`` holds every attribute served, by its key, unwrapped from
``{"label", "value", "type", "universal_id"}``: typed objects (department, office, team, ...) become their
``attributes`` object (``{"id", "name"}``), the supervisor its unwrapped short record (``{"id", "first_name",
"last_name", "email"}``), custom attributes stay under ``dynamic_<id>``. Attributes the credential may not read
are absent (their Employee fields None).

Errors (``ConnectorError``; ``RetryLater`` from shared.http passes through): a refused credential (401/403 from
auth, or twice on a data call) is not retryable and says what to check; 429 (Personio sends no Retry-After: the
client waits at least 1 s, as Personio asks, and retries up to 4 attempts in all), 5xx, dropped connections
after their retries are retryable; a 4xx otherwise, a malformed cursor or answer are not. Messages never carry
the secret or the token.

Limits: the employees endpoint allows 300 requests per minute (bursts of 15/s), 429 beyond; auth 60 per minute.
With ``settings.pace`` the client spaces requests 0.2 s apart (at most 30,000 employees a minute).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar

import httpx

from shared.hrms.connectors.base import (
    TOKENS,
    ConnectorError,
    ConnectorSettings,
    Employee,
    Page,
    Result,
    WriteRefused,
)
from shared.http import OutboundClient, OutboundError, RetryLater, RetryPolicy

STATUSES = frozenset({"onboarding", "active", "leave", "inactive"})
# Personio sends no Retry-After with its 429s and asks for at least a second before trying again.
RETRY = RetryPolicy(backoff_minimum=1.0)


def normalized_base_url(base_url: str) -> str:
    base = base_url.strip().rstrip("/")
    for suffix in ("/v1", "/v2"):
        if base.endswith(suffix):
            base = base[: -len(suffix)]
    return base


def text(value: Any) -> str | None:
    """A non-empty string, else None (numbers and objects are not names)."""
    return value if isinstance(value, str) and value else None


def date_part(value: Any) -> str | None:
    """YYYY-MM-DD from a date or a date-time as Personio sends it (its own day, no time zone conversion)."""
    if isinstance(value, str) and len(value) >= 10 and value[4] == "-" and value[7] == "-" and value[:4].isdigit():
        return value[:10]
    return None


def utc(moment: datetime) -> datetime:
    """A moment in UTC (a naive one is read as UTC)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


class PersonioApiBase:
    """One Personio API credential: the lazily built outbound client, the cached token, the error mapping.
    Subclasses set ``kind``, ``requests_per_minute`` and ``api_name`` and implement ``_authenticate``."""

    kind: ClassVar[str]
    requests_per_minute: ClassVar[int]
    api_name: ClassVar[str]

    def __init__(self, settings: ConnectorSettings, *, sleep: Callable[[float], None] = time.sleep) -> None:
        self.settings = settings
        self.base_url = normalized_base_url(settings.base_url)
        fields = settings.credential_fields("client_id", "client_secret")
        self._client_id = fields["client_id"]
        self._client_secret = fields["client_secret"]
        self._token_key = (self.kind, self.base_url, self._client_id)
        self._sleep = sleep
        self._client: OutboundClient | None = None
        self._client_lock = threading.Lock()
        self._auth_lock = threading.Lock()

    # the client

    def outbound(self) -> OutboundClient:
        """The connector's one OutboundClient (paced at the vendor's limit when ``settings.pace``)."""
        with self._client_lock:
            if self._client is None:
                self._client = OutboundClient(
                    self.kind, base_url=self.base_url,
                    requests_per_minute=self.requests_per_minute if self.settings.pace else None,
                    retry=RETRY, sleep=self._sleep)
            return self._client

    def close(self) -> None:
        with self._client_lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()

    def send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One request with the client's retries; failures after them become ConnectorError."""
        try:
            return self.outbound().request(method, path, **kwargs)
        except RetryLater:
            raise
        except OutboundError as error:
            detail = str(error).removeprefix(f"{error.service}: ")  # the client names the service: once is enough
            raise ConnectorError(f"{self.api_name}: {detail}", retryable=error.retryable) from None

    # the token

    def _authenticate(self) -> tuple[str, float]:
        """A new token and its lifetime in seconds; ConnectorError when refused."""
        raise NotImplementedError

    def token(self, *, stale: str | None = None) -> str:
        """The cached token, or a new one when there is none or the cached one is ``stale`` (refused)."""
        with self._auth_lock:
            token = TOKENS.get(self._token_key)
            if token is not None and token != stale:
                return token
            TOKENS.forget(self._token_key)
            token, expires_in = self._authenticate()
            TOKENS.put(self._token_key, token, expires_in)
            return token

    def refused(self) -> ConnectorError:
        return ConnectorError(
            f"{self.api_name} refused the API credential: check that the client id and secret are those of an "
            "active credential under Settings > Integrations > API credentials and that it may read employee data",
            retryable=False)

    # data calls

    def get_json(self, path: str, params: Mapping[str, Any] | None = None, *, missing_ok: bool = False) -> Any:
        """GET with the bearer token (re-authenticating once after a 401/403); the parsed JSON body, or None
        for a 404 when ``missing_ok``."""
        token = self.token()
        response = self.send("GET", path, params=params, headers={"Authorization": f"Bearer {token}"})
        if response.status_code in (401, 403):
            token = self.token(stale=token)
            response = self.send("GET", path, params=params, headers={"Authorization": f"Bearer {token}"})
            if response.status_code in (401, 403):
                raise self.refused()
        if response.status_code == 404 and missing_ok:
            return None
        if response.status_code != 200:
            raise self.unexpected(response)
        return self.parse(response)

    def parse(self, response: httpx.Response) -> Any:
        try:
            return json.loads(response.content)
        except ValueError:
            raise ConnectorError(f"{self.api_name} answered {response.request.url.path} with a body that is not "
                                 "JSON", retryable=False) from None

    def unexpected(self, response: httpx.Response) -> ConnectorError:
        """An answer no caller expects: retryable for 5xx, not for 4xx; with Personio's own message."""
        status = response.status_code
        detail = _error_detail(response)
        return ConnectorError(f"{self.api_name} answered {response.request.method} {response.request.url.path} "
                              f"with {status}{': ' + detail if detail else ''}", retryable=status >= 500)

    def malformed(self, what: str) -> ConnectorError:
        return ConnectorError(f"{self.api_name} sent a malformed answer: {what}", retryable=False)


def _error_detail(response: httpx.Response) -> str:
    """Personio's message from a v1 error, a v2 problem or an OAuth error (never request data), shortened."""
    try:
        body = json.loads(response.content)
    except ValueError:
        return ""
    detail: Any = None
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):
            detail = error.get("message")
        elif isinstance(error, str):
            detail = f"{error} ({body.get('error_description') or ''})"
        elif isinstance(body.get("errors"), list) and body["errors"] and isinstance(body["errors"][0], dict):
            detail = body["errors"][0].get("detail") or body["errors"][0].get("title")
    return str(detail)[:200] if detail else ""


# --- v1 ------------------------------------------------------------------------------------------------------


def _plain(value: dict[str, Any]) -> Any:
    """A typed object's attributes (``{"type", "attributes"}`` -> attributes), each unwrapped from its wrapper."""
    inner = value.get("attributes")
    if type(inner) is not dict:
        return value
    return {key: (item.get("value") if type(item) is dict and "value" in item else item)
            for key, item in inner.items()}


def employee_from_v1(item: Any) -> Employee:
    """One ``{"type": "Employee", "attributes": {...}}`` of the employees list as an Employee."""
    raw = item.get("attributes") if type(item) is dict else None
    if type(raw) is not dict:
        raise ConnectorError("Personio sent a malformed answer: an employee without attributes", retryable=False)
    try:  # the common case in one comprehension: every attribute wrapped with a value
        attributes: dict[str, Any] = {key: wrapped["value"] for key, wrapped in raw.items()}
    except (TypeError, KeyError):
        attributes = {key: (wrapped.get("value") if type(wrapped) is dict else wrapped) for key, wrapped in raw.items()}
    for key, value in attributes.items():  # only values change: no key is added while iterating
        if type(value) is dict:
            attributes[key] = _plain(value)
        elif type(value) is list:
            attributes[key] = [_plain(entry) if type(entry) is dict else entry for entry in value]
    hrms_id = attributes.get("id")
    if hrms_id is None or isinstance(hrms_id, dict | list):
        raise ConnectorError("Personio sent a malformed answer: an employee without id", retryable=False)
    supervisor = attributes.get("supervisor")
    department = attributes.get("department")
    office = attributes.get("office")
    status = attributes.get("status")
    status = status.lower() if isinstance(status, str) else None
    manager_id = supervisor.get("id") if type(supervisor) is dict else None
    return Employee(
        hrms_id=str(hrms_id),
        email=text(attributes.get("email")),
        first_name=text(attributes.get("first_name")),
        last_name=text(attributes.get("last_name")),
        job_title=text(attributes.get("position")),
        department=text(department.get("name")) if type(department) is dict else None,
        location=text(office.get("name")) if type(office) is dict else None,
        manager_hrms_id=str(manager_id) if manager_id is not None else None,
        manager_email=text(supervisor.get("email")) if type(supervisor) is dict else None,
        status=status if status in STATUSES else "active",
        start_date=date_part(attributes.get("hire_date")),
        attributes=attributes,
    )


class PersonioConnector(PersonioApiBase):
    """Personio v1: see the module docstring."""

    kind: ClassVar[str] = "personio"
    supports_incremental: ClassVar[bool] = True
    requests_per_minute: ClassVar[int] = 300  # GET /v1/company/employees; bursts of 15/s; auth: 60/min
    api_name: ClassVar[str] = "Personio"
    PAGE_SIZE: ClassVar[int] = 100  # the documented maximum of limit

    def __init__(self, settings: ConnectorSettings, *, page_size: int = PAGE_SIZE,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        super().__init__(settings, sleep=sleep)
        if not 1 <= page_size <= self.PAGE_SIZE:
            raise ValueError(f"page_size must be 1..{self.PAGE_SIZE}")
        self.page_size = page_size

    def _authenticate(self) -> tuple[str, float]:
        # The credential goes in the body: Personio refuses query-string credentials (and they would be logged).
        response = self.send("POST", "/v1/auth", json={"client_id": self._client_id,
                                                        "client_secret": self._client_secret}, idempotent=True)
        if response.status_code in (400, 401, 403):
            raise self.refused()
        if response.status_code != 200:
            raise self.unexpected(response)
        document = self.parse(response)
        data = document.get("data") if isinstance(document, dict) else None
        token = data.get("token") if isinstance(data, dict) else None
        if not isinstance(token, str) or not token:
            raise self.malformed("the auth answer has no token")
        expires_in = data.get("expires_in")
        return token, float(expires_in) if isinstance(expires_in, int | float) else 86400.0

    def page(self, cursor: str | None, *, changed_since: datetime | None = None) -> Page:
        offset = _offset(cursor)
        params: dict[str, Any] = {"limit": self.page_size, "offset": offset}
        if changed_since is not None:
            params["updated_since"] = utc(changed_since).strftime("%Y-%m-%dT%H:%M:%S")
        document = self.get_json("/v1/company/employees", params)
        try:
            data = document["data"]
            total = int(document["metadata"]["total_elements"])
            served_from = int(document.get("offset", offset))  # Personio sends it as a string at times
        except (KeyError, TypeError, ValueError):
            raise self.malformed("the employees list lacks data or metadata.total_elements") from None
        if type(data) is not list:
            raise self.malformed("data is not a list")
        if served_from < offset:  # offset ignored (updated_since, as the reference says): skip what came before
            data = data[offset - served_from:]
        employees = [employee_from_v1(item) for item in data]
        end = offset + len(data)
        return Page(employees, str(end) if data and end < total else None)

    def attributes(self) -> list[str]:
        document = self.get_json("/v1/company/employees/attributes")
        data = document.get("data") if isinstance(document, dict) else None
        if type(data) is not list:
            raise self.malformed("the attributes list has no data")
        keys = [entry["key"] for entry in data if type(entry) is dict and isinstance(entry.get("key"), str)]
        return ["id", *dict.fromkeys(key for key in keys if key != "id")]


def _offset(cursor: str | None) -> int:
    if cursor is None:
        return 0
    if not cursor.isdigit():
        raise ConnectorError(f"not a Personio cursor (the offset of the next page): {cursor[:40]!r}",
                             retryable=False)
    return int(cursor)


def connect(settings: ConnectorSettings) -> PersonioConnector:
    return PersonioConnector(settings)


# --- write-back ------------------------------------------------------------------------------------------------

RESULT_FIELDS = ("title", "completed_on", "score", "hours", "credits")


class PersonioWriter:
    """Results written back into an employee's custom attributes (write-back, shared.hrms.writeback).

    Target: which result fields go to which custom attributes, e.g. ``{"title": "dynamic_201",
    "completed_on": "dynamic_202", "score": "dynamic_203"}`` (fields: title, completed_on, score, hours,
    credits). Checked against the attributes the credential may read (Personio returns and accepts only
    whitelisted ones); every name must be a custom attribute (``dynamic_<id>``: ``custom_attributes`` takes
    nothing else). Written with ``PATCH /v1/company/employees/{id}`` ``{"employee": {"custom_attributes":
    {...}}}``: the employee's attributes hold the latest result, there is no record to create, so writing
    again is harmless and ``find_written`` finds the write when the attributes already hold these values,
    compared as Personio serves them back: numbers by value (a decimal written as 90.0 comes back as 90), dates
    by their day (``YYYY-MM-DD``, or a date-time with an offset as standard date attributes are served). The
    record id is the employee's id. A 404 (no such employee) and a 400/422 (an attribute Personio will not
    write, a value it refuses) are permanent refusals.
    """

    def __init__(self, settings: ConnectorSettings) -> None:
        self._api = PersonioConnector(settings)

    def check_target(self, target: Mapping[str, Any]) -> dict[str, Any]:
        unknown_fields = sorted(str(name) for name in set(target) - set(RESULT_FIELDS))
        not_custom = sorted(str(attribute) for attribute in target.values()
                            if not (isinstance(attribute, str) and attribute.startswith("dynamic_")))
        if unknown_fields or not_custom or not target:
            raise ConnectorError(f"Personio write-back maps result fields ({', '.join(RESULT_FIELDS)}) to custom "
                                 "attributes such as dynamic_123; unknown fields: "
                                 f"{', '.join(unknown_fields) or 'none'}; not custom attributes: "
                                 f"{', '.join(not_custom) or 'none'}", retryable=False)
        readable = set(self._api.attributes())
        missing = sorted(str(attribute) for attribute in target.values() if attribute not in readable)
        if missing:
            raise ConnectorError(f"Personio has no custom attribute the credential may use: {', '.join(missing)}",
                                 retryable=False)
        return dict(target)

    def _values(self, result: Result, target: Mapping[str, Any]) -> dict[str, Any]:
        return {attribute: getattr(result, field) for field, attribute in target.items()}

    @staticmethod
    def _same(served: Any, written: Any) -> bool:
        """Whether an attribute's served value is the value written (see the class docstring)."""
        if isinstance(written, int | float) and not isinstance(written, bool):
            if served is None or isinstance(served, bool | dict | list):
                return False
            try:
                return float(served) == float(written)
            except (TypeError, ValueError):
                return False
        if isinstance(written, str) and date_part(written) == written:
            return date_part(served) == written
        return isinstance(served, str) and served == str(written)

    def find_written(self, hrms_id: str, result: Result, target: Mapping[str, Any]) -> str | None:
        document = self._api.get_json(f"/v1/company/employees/{hrms_id}", missing_ok=True)
        if document is None:
            raise WriteRefused(f"Personio has no employee {hrms_id} (404)")
        attributes = ((document.get("data") or {}).get("attributes") or {}) if isinstance(document, dict) else {}
        current = {key: (value or {}).get("value") if isinstance(value, dict) else value
                   for key, value in attributes.items()}
        wanted = self._values(result, target)
        same = all(self._same(current.get(key), value) for key, value in wanted.items() if value is not None)
        return hrms_id if same and any(value is not None for value in wanted.values()) else None

    def write(self, hrms_id: str, result: Result, target: Mapping[str, Any]) -> str:
        body = {"employee": {"custom_attributes": {key: value for key, value in self._values(result, target).items()
                                                   if value is not None}}}
        path = f"/v1/company/employees/{hrms_id}"
        token = self._api.token()
        response = self._api.send("PATCH", path, json=body, headers={"Authorization": f"Bearer {token}"})
        if response.status_code in (401, 403):
            token = self._api.token(stale=token)
            response = self._api.send("PATCH", path, json=body, headers={"Authorization": f"Bearer {token}"})
            if response.status_code in (401, 403):
                raise self._api.refused()
        if response.status_code in (200, 201, 204):
            return hrms_id
        if response.status_code in (400, 404, 422):
            detail = _error_detail(response)
            raise WriteRefused(f"Personio refused the attributes of employee {hrms_id} ({response.status_code}"
                               f"{': ' + detail if detail else ''})")
        raise self._api.unexpected(response)

    def close(self) -> None:
        self._api.close()


def writer(settings: ConnectorSettings) -> PersonioWriter:
    return PersonioWriter(settings)
