"""Merge connector: the employees of one Merge linked account, through Merge's unified HRIS API.

Settings: ``base_url`` is Merge's HRIS base, ``https://api.merge.dev/api/hris/v1`` (or the EU / APAC host's). The
credential is the JSON object ``{"api_key": "...", "account_token": "..."}``: our Merge API key (``Authorization:
Bearer``) and the tenant's linked account token (``X-Account-Token``).

Calls (one OutboundClient per connector, built on first use; paced at 100 requests a minute when ``settings.pace``
is on: Merge limits each linked account to 100 / 400 / 600 a minute by plan, and the lowest is the safe one):
- ``GET /employees?page_size=100&expand=employments,groups,manager,work_location&include_deleted_data=true``
  (``&modified_after=<ISO>`` when ``changed_since`` is given, ``&cursor=<cursor>`` after the first page) ->
  ``{"next", "previous", "results"}``. ``include_deleted_data`` makes Merge return the employees deleted in the
  HRIS (``remote_was_deleted``), which it otherwise leaves out, so a sync sees departures;
- ``attributes()`` also calls ``GET /linked-account-scopes`` (the Employee fields turned off for the account; a
  refusal there, e.g. a plan without Scopes, means none are) and one ``GET /employees?page_size=100`` without
  expansion (the custom field keys).

Pages and cursor: one page is one Merge page (at most 100 employees). The cursor is Merge's own ``next`` value,
opaque and stateless (it encodes the position), so a stored cursor continues in a new connector and in another
process. Merge wants the other query parameters unchanged between pages: the engine must pass the same
``changed_since`` to every page of a run (as the contract says). Incremental (``supports_incremental``):
``changed_since`` becomes ``modified_after``, which Merge compares with ``modified_at``, the time MERGE changed its
copy (after its own sync with the HRIS, hourly to daily by plan), not the time of the change in the HRIS: run
incremental syncs from the start of the previous run minus a margin, and expect changes to arrive only after
Merge's next sync.

Mapping into Employee: ``id`` (Merge's id, stable per linked account) -> hrms_id; ``work_email``; ``first_name``,
``last_name``; job_title from the expanded employments (the one not deleted with the latest ``effective_date``);
department: the name of the first expanded group of type ``DEPARTMENT``; location: the expanded ``work_location``'s
name; manager: the expanded manager's ``id`` and ``work_email``; status: ``remote_was_deleted`` -> inactive, else
``employment_status`` PENDING -> onboarding, ACTIVE -> active, INACTIVE -> inactive (Merge's model has no leave:
people on leave come as active), none -> inactive when ``termination_date`` has passed, else active; start_date:
the date of ``start_date``. A field Merge returns as null (no value, not offered by the HRIS, or turned off in
Scopes) is None.

Attributes: Merge's fixed Employee fields (``FIXED_ATTRIBUTES``: the model without ``ssn``, never requested,
``custom_fields``, ``field_mappings`` and ``remote_data``), related objects by their ids as Merge returns them
without expansion (``groups``, ``employments`` lists of ids; ``manager``, ``work_location``, ... an id), plus each
custom field as ``custom_fields.<key>``. Only non-null values are kept: Merge serves a field turned off in Scopes
as null, so a page never holds a name ``attributes()`` leaves out. ``attributes()`` = the fixed fields minus the
account's disabled ones, plus ``custom_fields.<key>`` for every key found on the first page of employees (Merge
has no schema for ``custom_fields``: a key no employee of that page carries is missed).

Errors (ConnectorError): 401 (API key or account token refused) and 403 (account not usable, or the Employee
model off) are not retryable and say what to check; 429 and 5xx after the retries (Retry-After honoured), and
connection failures, are retryable; 404 (a wrong base URL, or a stored cursor Merge no longer accepts), other 4xx
and malformed answers are not. ``RetryLater`` (a Retry-After over a minute) propagates. No secret appears in any
message or log.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Any, ClassVar

from shared.hrms.connectors.base import Connector, ConnectorError, ConnectorSettings, Employee, Page
from shared.http import OutboundClient, OutboundError, RetryLater, RetryPolicy

log = logging.getLogger(__name__)

PAGE_SIZE = 100  # Merge's maximum
EXPAND = "employments,groups,manager,work_location"
RETRY = RetryPolicy(max_attempts=4)  # tests swap in a faster one
FIXED_ATTRIBUTES = (
    "id", "remote_id", "created_at", "modified_at", "employee_number", "company", "first_name", "last_name",
    "preferred_name", "display_full_name", "username", "groups", "work_email", "personal_email",
    "mobile_phone_number", "employments", "home_location", "work_location", "manager", "team", "pay_group",
    "gender", "ethnicity", "marital_status", "date_of_birth", "hire_date", "start_date", "remote_created_at",
    "employment_status", "termination_date", "avatar", "remote_was_deleted")
RELATIONS = frozenset({"company", "home_location", "work_location", "manager", "team", "pay_group"})
RELATION_LISTS = frozenset({"groups", "employments"})
CUSTOM_PREFIX = "custom_fields."
STATUSES = {"PENDING": "onboarding", "ACTIVE": "active", "INACTIVE": "inactive"}
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def _text(value: Any) -> str | None:
    if isinstance(value, str):
        return value.strip() or None
    return None


def _date(value: Any) -> str | None:
    if not isinstance(value, str) or not _DATE.match(value):
        return None
    try:
        return date.fromisoformat(value[:10]).isoformat()
    except ValueError:
        return None


def _relation_id(value: Any) -> str | None:
    """The id of a related object, expanded (an object) or not (an id)."""
    if isinstance(value, Mapping):
        return _text(value.get("id"))
    return _text(value)


def _objects(value: Any) -> list[Mapping[str, Any]]:
    """The expanded objects of a relation list, without those deleted in the HRIS."""
    if not isinstance(value, list):
        return []
    return [item for item in value if isinstance(item, Mapping) and not item.get("remote_was_deleted")]


def _job_title(employments: Any) -> str | None:
    current = sorted(_objects(employments), key=lambda item: str(item.get("effective_date") or ""))
    return _text(current[-1].get("job_title")) if current else None


def _department(groups: Any) -> str | None:
    return next((_text(group.get("name")) for group in _objects(groups) if group.get("type") == "DEPARTMENT"), None)


def _status(raw: Mapping[str, Any]) -> str:
    if raw.get("remote_was_deleted") is True:
        return "inactive"
    status = raw.get("employment_status")
    if isinstance(status, str) and status.upper() in STATUSES:
        return STATUSES[status.upper()]
    ended = _date(raw.get("termination_date"))
    return "inactive" if ended is not None and ended <= datetime.now(UTC).date().isoformat() else "active"


def _iso(moment: datetime) -> str:
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


def _attributes(raw: Mapping[str, Any]) -> dict[str, Any]:
    attributes: dict[str, Any] = {}
    for name in FIXED_ATTRIBUTES:
        value = raw.get(name)
        if name in RELATIONS:
            value = _relation_id(value)
        elif name in RELATION_LISTS:
            value = [found for found in map(_relation_id, value) if found] if isinstance(value, list) else None
        if value is not None:
            attributes[name] = value
    custom = raw.get("custom_fields")
    if isinstance(custom, Mapping):
        attributes.update({CUSTOM_PREFIX + str(key): value for key, value in custom.items() if value is not None})
    return attributes


class MergeConnector:
    kind: ClassVar[str] = "merge"
    supports_incremental: ClassVar[bool] = True
    requests_per_minute: ClassVar[int] = 100  # per linked account on Merge's lowest plan

    def __init__(self, settings: ConnectorSettings) -> None:
        credential = settings.credential_fields("api_key", "account_token")
        self._headers = {"Authorization": f"Bearer {credential['api_key']}",
                         "X-Account-Token": credential["account_token"], "Accept": "application/json"}
        self._base_url = settings.base_url.rstrip("/")
        self._pace = settings.pace
        self._client: OutboundClient | None = None

    # the engine's calls

    def page(self, cursor: str | None, *, changed_since: datetime | None = None) -> Page:
        params = {"page_size": str(PAGE_SIZE), "expand": EXPAND, "include_deleted_data": "true"}
        if changed_since is not None:
            params["modified_after"] = _iso(changed_since)
        if cursor is not None:
            if not isinstance(cursor, str) or not cursor:
                raise ConnectorError("the stored cursor is not a Merge cursor", retryable=False)
            params["cursor"] = cursor
        answer = self._get("/employees", params)
        results = answer.get("results")
        if not isinstance(results, list):
            raise ConnectorError("Merge's employees answer has no results list", retryable=False)
        employees = []
        for raw in results:
            employee = self._employee(raw)
            if employee is None:
                log.warning("Merge: an employee without an id was left out")
            else:
                employees.append(employee)
        next_cursor = answer.get("next")
        return Page(employees, next_cursor if isinstance(next_cursor, str) and next_cursor else None)

    def attributes(self) -> list[str]:
        disabled = self._disabled_fields()
        names = [name for name in FIXED_ATTRIBUTES if name not in disabled]
        if "custom_fields" in disabled:
            return names
        answer = self._get("/employees", {"page_size": str(PAGE_SIZE), "include_deleted_data": "true"})
        keys: set[str] = set()
        for raw in answer.get("results") or []:
            custom = raw.get("custom_fields") if isinstance(raw, Mapping) else None
            if isinstance(custom, Mapping):
                keys.update(str(key) for key in custom)
        return names + [CUSTOM_PREFIX + key for key in sorted(keys)]

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    # HTTP

    def _http(self) -> OutboundClient:
        if self._client is None:
            self._client = OutboundClient(
                self.kind, base_url=self._base_url, headers=self._headers,
                requests_per_minute=self.requests_per_minute if self._pace else None, retry=RETRY)
        return self._client

    def _get(self, path: str, params: Mapping[str, str], *, refusals_mean_nothing: bool = False) -> Any:
        try:
            response = self._http().get(path, params=params)
        except RetryLater:
            raise
        except OutboundError as error:
            raise ConnectorError(f"Merge did not answer GET {path} ({error})", retryable=error.retryable) from error
        status = response.status_code
        if status == 401:
            raise ConnectorError("Merge refused the credential (401): check api_key (the Merge API key) and "
                                 "account_token (the tenant's linked account token) of the Merge credential",
                                 retryable=False)
        if status in (403, 404) and refusals_mean_nothing:
            return None
        if status == 403:
            raise ConnectorError("Merge refused access (403): the linked account may need relinking or be "
                                 "disabled, or the Employee model's read scope is off", retryable=False)
        if status == 404:
            raise ConnectorError(f"Merge answered 404 for GET {path} ({_detail(response.text)}): check the base "
                                 "URL (https://api.merge.dev/api/hris/v1 or the EU / APAC host); a stored cursor "
                                 "Merge no longer accepts needs a full sync", retryable=False)
        if status == 429 or status >= 500:
            raise ConnectorError(f"Merge answered GET {path} with {status}", retryable=True)
        if status >= 300:
            raise ConnectorError(f"Merge refused GET {path} ({status}): {_detail(response.text)}", retryable=False)
        try:
            answer = response.json()
        except ValueError:
            raise ConnectorError(f"Merge answered GET {path} with something that is not JSON",
                                 retryable=False) from None
        if not isinstance(answer, Mapping):
            raise ConnectorError(f"Merge's answer to GET {path} is not an object", retryable=False)
        return answer

    def _disabled_fields(self) -> frozenset[str]:
        answer = self._get("/linked-account-scopes", {}, refusals_mean_nothing=True)
        models = answer.get("common_models") if isinstance(answer, Mapping) else None
        for model in models if isinstance(models, list) else []:
            if isinstance(model, Mapping) and model.get("model_name") == "Employee":
                permissions = model.get("field_permissions")
                disabled = permissions.get("disabled_fields") if isinstance(permissions, Mapping) else None
                return frozenset(str(name) for name in disabled) if isinstance(disabled, list) else frozenset()
        return frozenset()

    # mapping

    @staticmethod
    def _employee(raw: Any) -> Employee | None:
        if not isinstance(raw, Mapping) or _text(raw.get("id")) is None:
            return None
        manager = raw.get("manager")
        return Employee(
            hrms_id=str(raw["id"]).strip(),
            email=_text(raw.get("work_email")),
            first_name=_text(raw.get("first_name")),
            last_name=_text(raw.get("last_name")),
            job_title=_job_title(raw.get("employments")),
            department=_department(raw.get("groups")),
            location=_text(raw["work_location"].get("name")) if isinstance(raw.get("work_location"), Mapping)
            else None,
            manager_hrms_id=_relation_id(manager),
            manager_email=_text(manager.get("work_email")) if isinstance(manager, Mapping) else None,
            status=_status(raw),
            start_date=_date(raw.get("start_date")),
            attributes=_attributes(raw),
        )


def _detail(text: str) -> str:
    """Merge's (Django REST framework's) error detail, short."""
    try:
        document = json.loads(text)
    except ValueError:
        return text[:200] or "no detail"
    if isinstance(document, Mapping) and isinstance(document.get("detail"), str):
        return document["detail"][:200]
    return json.dumps(document)[:200]


def connect(settings: ConnectorSettings) -> MergeConnector:
    """A Merge connector for these settings; it makes no request until used."""
    return MergeConnector(settings)


_: type[Connector] = MergeConnector  # the class keeps to the Connector protocol
