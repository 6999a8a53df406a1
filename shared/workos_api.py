"""The WorkOS API through the official SDK: one client per process, built from the settings.

Contract (tests/directory/test_workos_api.py):
- the client is created on first use with WORKOS_API_KEY, WORKOS_CLIENT_ID and WORKOS_BASE_URL
  passed explicitly (the SDK would otherwise read the environment itself), and sends through the
  shared outbound policy's guarded transport (shared/http.py); the SDK retries 429 and 5xx itself;
- ``portal_link`` and ``create_organization`` raise ``WorkOSUnavailable`` (with the status and
  WorkOS's message, never the API key) when WorkOS refuses or cannot be reached.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from shared import config

if TYPE_CHECKING:
    from workos import WorkOSClient

PORTAL_INTENTS = ("sso", "dsync", "domain_verification")

_lock = threading.Lock()
_client: WorkOSClient | None = None


class WorkOSUnavailable(RuntimeError):
    """WorkOS refused a call or could not be reached."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def client() -> WorkOSClient:
    global _client
    with _lock:
        if _client is None:
            from workos import WorkOSClient

            from shared.http import guarded_httpx_client

            settings = config.workos()
            _client = WorkOSClient(api_key=settings.api_key, client_id=settings.client_id,
                                   base_url=settings.base_url, http_client=guarded_httpx_client("workos"))
        return _client


def reset() -> None:
    global _client
    with _lock:
        _client = None


def _unavailable(error: Exception, what: str) -> WorkOSUnavailable:
    status = getattr(error, "status_code", None) or getattr(error, "status", None)
    message = getattr(error, "message", None) or type(error).__name__
    return WorkOSUnavailable(f"WorkOS {what} failed" + (f" ({status})" if status else "") + f": {message}",
                             status=status if isinstance(status, int) else None)


def portal_link(organization_id: str, intent: str, *, return_url: str | None = None) -> str:
    """A fresh Admin Portal link (valid for 5 minutes) for the organization's IT admin."""
    if intent not in PORTAL_INTENTS:
        raise ValueError(f"intent must be one of {', '.join(PORTAL_INTENTS)}")
    from workos import WorkOSError

    try:
        return client().admin_portal.generate_link(organization=organization_id, intent=intent,
                                                   return_url=return_url).link
    except (WorkOSError, OSError) as error:
        raise _unavailable(error, "Admin Portal link") from error


def create_organization(name: str, domains: list[str]) -> dict[str, Any]:
    """Create a WorkOS organization with these (unverified) domains; returns {id, name, domains}."""
    from workos import WorkOSError

    try:
        organization = client().organizations.create_organization(name=name, domains=domains or None)
    except (WorkOSError, OSError) as error:
        raise _unavailable(error, "organization creation") from error
    return {"id": organization.id, "name": organization.name,
            "domains": [domain.domain for domain in organization.domains]}
