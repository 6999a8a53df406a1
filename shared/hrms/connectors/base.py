"""What every HRMS connector provides, and the one normalized employee record they all map into.

Contract (each connector's tests under tests/hrms/):
- ``connect(settings)`` builds a connector from its settings (the HRMS's base URL, the credential secret's
  value — a JSON object whose keys each module documents —, and whether to pace requests); it makes no
  request until used;
- ``page(cursor, changed_since=None)`` returns one page of employees and the cursor of the next page (None
  on the last). The cursor is an opaque string the engine stores as its checkpoint: calling ``page`` again
  with it, in another process hours later, continues exactly there. ``changed_since`` asks for the
  employees changed since then (only when ``supports_incremental``); a connector that cannot tell
  returns every employee;
- ``attributes()`` lists the source attribute names the credential can read (what a field mapping may
  name): every key a page's ``Employee.attributes`` can hold;
- all HTTP goes through ``shared.http.OutboundClient`` (retries honouring Retry-After, backoff with
  jitter, the SSRF guard) with ``requests_per_minute`` set to the vendor's documented limit when
  ``settings.pace`` is on; access tokens are cached for their lifetime, per process;
- failures raise ``ConnectorError`` (``retryable`` says whether a later attempt can help: rate limits,
  5xx, connection failures; a refused credential or a malformed answer is not), or ``RetryLater``
  from shared.http when the HRMS asks for a long pause.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, Protocol

EMPLOYMENT_STATUSES = ("onboarding", "active", "leave", "inactive")


class ConnectorError(Exception):
    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


@dataclass(frozen=True)
class ConnectorSettings:
    base_url: str
    credential: str  # the secret's value: a JSON object, keys documented by each connector module
    pace: bool = True

    def credential_fields(self, *names: str) -> dict[str, str]:
        """The named fields of a JSON credential; ConnectorError naming what is missing."""
        try:
            document = json.loads(self.credential)
        except ValueError:
            raise ConnectorError(f"the credential must be a JSON object with {', '.join(names)}",
                                 retryable=False) from None
        if not isinstance(document, dict):
            raise ConnectorError(f"the credential must be a JSON object with {', '.join(names)}", retryable=False)
        missing = [name for name in names if not isinstance(document.get(name), str) or not document[name]]
        if missing:
            raise ConnectorError(f"the credential lacks {', '.join(missing)}", retryable=False)
        return {name: document[name] for name in names}


@dataclass(frozen=True)
class Employee:
    """One employee as every HRMS maps into it. Text fields are None when the HRMS has no value or the
    credential may not read them; ``status`` is one of EMPLOYMENT_STATUSES; ``start_date`` is YYYY-MM-DD."""

    hrms_id: str
    email: str | None
    first_name: str | None
    last_name: str | None
    job_title: str | None = None
    department: str | None = None
    location: str | None = None
    manager_hrms_id: str | None = None
    manager_email: str | None = None
    status: str = "active"
    start_date: str | None = None
    # Every readable source attribute by its source name (custom fields included: Personio dynamic_<id>,
    # BambooHR customX, HiBob custom.*, Merge custom_fields / remote_data keys), plain JSON values.
    attributes: Mapping[str, Any] = field(default_factory=dict)

    def profile(self) -> dict[str, Any]:
        return {"hrms_id": self.hrms_id, "email": self.email, "first_name": self.first_name,
                "last_name": self.last_name, "job_title": self.job_title, "department": self.department,
                "location": self.location, "manager_hrms_id": self.manager_hrms_id,
                "manager_email": self.manager_email, "status": self.status, "start_date": self.start_date}


@dataclass(frozen=True)
class Page:
    employees: list[Employee]
    next_cursor: str | None


class Connector(Protocol):
    kind: ClassVar[str]
    supports_incremental: ClassVar[bool]
    requests_per_minute: ClassVar[int]  # the vendor's documented limit, used when pacing is on

    def page(self, cursor: str | None, *, changed_since: datetime | None = None) -> Page: ...

    def attributes(self) -> list[str]: ...

    def close(self) -> None: ...


class TokenCache:
    """Access tokens per key (base URL and client id), kept until shortly before they expire; per process."""

    MARGIN_SECONDS = 300.0

    def __init__(self) -> None:
        import threading

        self._lock = threading.Lock()
        self._tokens: dict[tuple[str, ...], tuple[str, float]] = {}

    def get(self, key: tuple[str, ...]) -> str | None:
        import time

        with self._lock:
            found = self._tokens.get(key)
        return found[0] if found and found[1] > time.monotonic() else None

    def put(self, key: tuple[str, ...], token: str, expires_in: float) -> None:
        import time

        with self._lock:
            self._tokens[key] = (token, time.monotonic() + max(0.0, expires_in - self.MARGIN_SECONDS))

    def forget(self, key: tuple[str, ...] | None = None) -> None:
        with self._lock:
            if key is None:
                self._tokens.clear()
            else:
                self._tokens.pop(key, None)


TOKENS = TokenCache()


# --- write-back (completions and assessments into the HRMS) ------------------------------------------------


RESULT_KINDS = ("completion", "assessment")


@dataclass(frozen=True)
class Result:
    """A completion or assessment result of one employee, as a tenant app reported it."""

    result_id: str
    kind: str  # one of RESULT_KINDS
    title: str
    completed_on: str  # YYYY-MM-DD
    score: float | None = None
    hours: float | None = None
    credits: float | None = None
    details: Mapping[str, Any] | None = None

    @property
    def marker(self) -> str:
        """Written with the record where the HRMS has room for text, so an earlier write can be found again."""
        return f"[ec:{self.result_id}]"


class WriteRefused(ConnectorError):
    """The HRMS refused the write for good (unknown employee, a field that is not writable, a bad value):
    retrying cannot help. The message says why, for the result's record and the tenant's admins."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=False)


class Writer(Protocol):
    """Write-back for one HRMS. ``target`` is the tenant's write-back mapping for one result kind (its shape is
    the connector module's to document), e.g. BambooHR ``{"training_type_id": 12}``.

    - ``check_target(target)`` asks the HRMS whether the target exists and can be written (the training type,
      the custom attributes, the table and its columns) and returns it normalized; ConnectorError naming every
      problem otherwise (non-retryable);
    - ``find_written(hrms_id, result, target)`` returns the HRMS's record id of an earlier write of this result
      (found by ``result.marker`` or by the values written), or None: a write that crashed before we recorded
      it is found again instead of written twice;
    - ``write(hrms_id, result, target)`` writes and returns the HRMS's own record id; WriteRefused for a
      permanent refusal, a retryable ConnectorError for the rest;
    - ``close()``."""

    def check_target(self, target: Mapping[str, Any]) -> dict[str, Any]: ...

    def find_written(self, hrms_id: str, result: Result, target: Mapping[str, Any]) -> str | None: ...

    def write(self, hrms_id: str, result: Result, target: Mapping[str, Any]) -> str: ...

    def close(self) -> None: ...
