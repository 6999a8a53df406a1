"""A local stand-in of the WorkOS API, answering with exactly the JSON the ``workos`` SDK (10.x) parses.

Point the SDK at it by base URL (``WorkOSClient(api_key=..., base_url=standin.base_url, max_retries=0)``
or ``WORKOS_BASE_URL``). Standard library HTTP server on 127.0.0.1, one background thread per request.

Endpoints (all need ``Authorization: Bearer <api key>`` except the pages a browser opens, and
``/sso/token``, which authenticates the client itself):

- ``GET /events`` — the Events API over an ordered event log. ``events`` (comma list) is required:
  missing or empty -> 422 ``{"message": "Validation failed.", "errors": [{"code": "required",
  "field": "events"}]}`` (the documented body); a malformed name -> 400 ``invalid_events_request``.
  ``limit`` 1..100 (default 10, else 422). ``after`` / ``before`` are exclusive event-id cursors
  (ids sort in creation order, so a cursor works even for an event the filters hide);
  ``range_start`` / ``range_end`` are exclusive ISO-8601 bounds with a ``Z`` suffix (an offset such
  as ``+00:00`` -> 422, as the SDK documents); ``organization_id`` keeps the events of one
  organization; ``order`` is ``asc`` (the default: oldest first), ``desc`` or ``normal``. Events
  older than ``retention_days`` are not served. ``list_metadata.after`` is the last id of the page
  while more events follow and null on the last page, so the SDK's auto-pager stops; a poller keeps
  the id of the last event it processed as its cursor, as WorkOS recommends, never a null ``after``.
  Caveat: a public report (workos/workos-node#1610) says the live API ignores ``order`` and always
  serves oldest first; the stand-in honours it as documented, so do not build on ``desc``.
- ``POST /portal/generate_link`` -> 201 ``{"link": "<base>/portal/launch?secret=..."}``; unknown
  organization -> 404, missing or unknown intent -> 422. ``GET /portal/launch?secret=`` (no auth) is
  a small HTML page; unknown secrets and links older than 5 minutes -> 404.
- ``POST /organizations`` -> 201 Organization (``domains`` are the deprecated plain list and become
  ``legacy_verified`` domains; ``domain_data`` entries carry ``verified`` or ``pending``); a domain
  another organization holds -> 409. ``GET /organizations/{id}`` (404 unknown), ``GET /organizations``
  (list, ``order`` defaults to ``normal``: newest first; ``domains`` and ``search`` filters).
- SSO (standalone API). Every organization has one SSO connection (``conn_...`` derived from the
  organization id, ``connection_type`` ``OktaSAML`` unless given) and test users (``add_sso_user``).
  ``GET /sso/authorize`` (no auth: a browser opens it) checks ``client_id`` (the stand-in's),
  ``response_type=code``, ``redirect_uri`` (absolute http(s); one of ``redirect_uris`` when those are
  configured, a ``*.`` wildcard standing for one subdomain label), ``organization`` or ``connection``
  (which must exist and agree) and, when PKCE is used, ``code_challenge_method=S256`` with a 43-character
  challenge; ``provider`` / ``domain`` sign-ins are not stood in. A bad request is an HTML error page
  (400). Otherwise it renders the IdP's sign-in page: a button per test user, a form for another user
  (email prefilled from ``login_hint``; first/last name; role slugs, highest first; comma-separated
  groups: typing a listed email updates the fields filled in) and a Deny button, all posting to
  ``POST /sso/authorize/complete``, which answers 302 to ``redirect_uri?code=...&state=...`` or
  ``?error=access_denied&error_description=...&state=...`` (``state`` echoed only when the app sent one).
  A page can be submitted once, within 10 minutes. Codes are random, work once, for 10 minutes, and are
  bound to the client id, the redirect URI and the PKCE challenge; they carry the profile as it was at
  sign-in. ``GET /sso/idp_initiated?organization=ORG&redirect_uri=URI&email=EMAIL`` is a sign-in started
  at the IdP: 302 to ``redirect_uri?code=...`` with no state, as WorkOS sends them (an unknown email
  becomes a test user; without ``redirect_uri`` the first configured non-wildcard one).
  ``POST /sso/token`` takes what ``sso.get_profile_and_token`` / ``get_profile_and_token_pkce`` send (a
  JSON or form body with ``code, grant_type, client_id, client_secret, code_verifier``; ``Authorization:
  Bearer <api key>``). A wrong Bearer key -> 401 ``unauthorized``; a wrong ``client_secret`` -> 401
  ``invalid_client``; neither sent is a public client, allowed only for a PKCE code. Then, as OAuth
  errors ``{"error", "error_description"}``: 400 ``unsupported_grant_type`` (grant_type is not
  ``authorization_code``), ``invalid_request`` (no code or client_id), ``invalid_grant`` (unknown,
  expired or used code, another client id, another ``redirect_uri`` when one is sent, a missing or
  wrong ``code_verifier`` for a PKCE code, a ``code_verifier`` for a code without PKCE). Only a
  successful exchange spends the code. 200: ``{"token_type": "Bearer", "access_token", "expires_in":
  600, "profile": {object, id, organization_id, connection_id, connection_type, idp_id, email,
  first_name, last_name, name, role {slug}, roles [{slug}], groups, custom_attributes {},
  raw_attributes {}}}``; the profile id is derived from the connection and the email, so a person
  keeps it across sign-ins. ``sign_in(url, email, **fields)`` and ``deny(url)`` do over HTTP what a
  person does on the page and return the redirect's Location, for tests without a browser.
- ``/_standin/...`` control endpoints for a stand-in in another process (``make dev``, ``send``):
  ``POST /_standin/organizations`` {name, domains?, id?, connection_type?} and ``POST /_standin/directories``
  {organization_id, id?, type?, name?} create (201) or, for an id that exists, return it (200);
  ``POST /_standin/events`` {event, data, created_at?, id?} appends an event (201);
  ``POST /_standin/sso_users`` {organization_id, email, first_name?, last_name?, role?, roles?, groups?,
  profile_id?, idp_id?} adds a test user (201) or replaces the one with that email (200), answering its
  profile; ``GET /_standin/sso_users[?organization_id=]`` lists them;
  ``GET /_standin/events`` is the whole log, ``GET /_standin/portal_links`` every link generated.
  They are never rate limited.
- Anything else -> 404 ``{"message": "Not Found", "code": "not_found"}``.

Errors are JSON objects with ``message`` and, where WorkOS sends one, ``code`` / ``errors``: what the
SDK's error mapping reads. A wrong or missing key -> 401 ``{"message": "Unauthorized", "code":
"unauthorized"}``. With ``requests_per_second=N``, a key that already made N requests within the last
second gets 429 with ``Retry-After`` in whole seconds (the form the SDK parses) and
``{"message": "Too many requests", "code": "rate_limit_exceeded"}``. Every answer has an
``X-Request-ID``.

The event log is kept in id order; ``emit`` returns the event and ``send_webhook`` posts it signed
(``sign``: ``WorkOS-Signature: t=<unix ms>, v1=<hex HMAC-SHA256 of "<ms>.<raw body>">``) so a webhook
and the Events API deliver the same event id. ``*.updated`` events get ``previous_attributes``
computed from the last payload the log holds for the same object unless the data carries them.

Command line: ``python -m local.workos serve`` and ``python -m local.workos send`` (see ``--help``).
"""

from __future__ import annotations

import argparse
import base64
import bisect
import copy
import hashlib
import hmac
import html
import itertools
import json
import math
import re
import secrets
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, NoReturn
from urllib.parse import parse_qs, parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

import httpx

from local.serving import ServedOnAThread, serve_in_foreground, write_answer

DEFAULT_PORT = 7081
DEFAULT_API_KEY = "sk_test_local"
PORTAL_INTENTS = frozenset({
    "sso", "dsync", "audit_logs", "log_streams", "domain_verification", "certificate_renewal", "bring_your_own_key",
})
PORTAL_LINK_LIFETIME = timedelta(minutes=5)
SSO_CODE_LIFETIME = timedelta(minutes=10)  # codes, and sign-in pages waiting for a choice
SSO_ACCESS_TOKEN_SECONDS = 600
DEFAULT_CONNECTION_TYPE = "OktaSAML"
DEFAULT_SSO_ROLE = "member"  # what WorkOS gives a user none of whose IdP groups is mapped to a role
USER_STATES = ("active", "inactive", "suspended")

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_EVENT_NAME = re.compile(r"[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+")
# What previous_attributes never lists: identity and bookkeeping, not attributes.
_NOT_ATTRIBUTES = frozenset({"object", "id", "directory_id", "organization_id", "created_at", "updated_at",
                             "previous_attributes"})


def _utcnow() -> datetime:
    """The stand-in's clock (tests move it to expire portal links)."""
    return datetime.now(UTC)


def _iso(moment: datetime) -> str:
    """ISO-8601 in UTC with milliseconds and ``Z``: the form WorkOS sends and the SDK writes."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _parse_iso(value: str) -> datetime:
    moment = datetime.fromisoformat(value)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


# --- ids and signatures -----------------------------------------------------------------------------

_id_lock = threading.Lock()
_newest_id = [0, 0]  # [milliseconds, randomness] of the newest id handed out


def _base32(value: int, length: int) -> str:
    digits = []
    for _ in range(length):
        value, digit = divmod(value, 32)
        digits.append(_CROCKFORD[digit])
    return "".join(reversed(digits))


def new_id(prefix: str) -> str:
    """``f"{prefix}_01..."``: a ULID (48-bit milliseconds + 80 bits, 26 Crockford base32 characters).

    Strictly increasing within the process, across prefixes and threads: in the same millisecond (or
    if the clock steps back) the randomness of the newest id is incremented, as monotonic ULIDs do.
    The Events API cursor relies on this: event ids sort in creation order.
    """
    with _id_lock:
        now_ms = time.time_ns() // 1_000_000
        if now_ms > _newest_id[0]:
            # 79 random bits leave the top bit free, so increments never overflow into the timestamp.
            _newest_id[:] = [now_ms, secrets.randbits(79)]
        else:
            _newest_id[1] += 1
        stamp, randomness = _newest_id
    return f"{prefix}_{_base32(stamp, 10)}{_base32(randomness, 16)}"


def derived_id(prefix: str, *parts: str) -> str:
    """An id of the same shape derived from ``parts``: the same parts always give the same id."""
    digest = hashlib.sha256("\x1f".join(parts).encode()).digest()
    return f"{prefix}_{_base32(int.from_bytes(digest[:16]), 26)}"


def sign(body: bytes, secret: str, *, timestamp_ms: int | None = None) -> str:
    """The ``WorkOS-Signature`` header value for ``body``: ``t=<unix ms>, v1=<hex>`` where ``hex`` is
    HMAC-SHA256(secret, ``"<ms>.<body>"``). Comma and space, milliseconds: what the SDK's verifier splits."""
    stamp = time.time_ns() // 1_000_000 if timestamp_ms is None else timestamp_ms
    digest = hmac.new(secret.encode(), f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={stamp}, v1={digest}"


def send_webhook(url: str, event: Mapping[str, Any], secret: str, *, timeout: float = 10.0) -> httpx.Response:
    """POST ``event`` to ``url`` as WorkOS delivers a webhook: a UTF-8 JSON body, signed over those bytes."""
    body = json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode()
    headers = {"Content-Type": "application/json", "WorkOS-Signature": sign(body, secret),
               "User-Agent": "WorkOS webhooks (local stand-in)"}
    return httpx.post(url, content=body, headers=headers, timeout=timeout)


# --- errors -------------------------------------------------------------------------------------------


class ApiError(Exception):
    """An error answer shaped as WorkOS shapes it. The Python methods raise it too."""

    def __init__(self, status: int, message: str, *, code: str | None = None,
                 errors: list[dict[str, str]] | None = None, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.errors = errors
        self.headers = dict(headers or {})

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"message": self.message}
        if self.code is not None:
            body["code"] = self.code
        if self.errors is not None:
            body["errors"] = self.errors
        return body


def _invalid(field_name: str, code: str = "invalid") -> ApiError:
    return ApiError(422, "Validation failed.", errors=[{"code": code, "field": field_name}])


def _organization_not_found(organization_id: str) -> ApiError:
    return ApiError(404, f"Organization not found: '{organization_id}'.", code="entity_not_found")


# --- payload shapes (module level so that ``send`` builds them without a local stand-in) ----------------


def _user_payload(directory: Mapping[str, Any], *, user_id: str | None, email: str | None,
                  first_name: str | None, last_name: str | None, state: str, role_slug: str | None,
                  custom_attributes: Mapping[str, Any] | None, updated_at: datetime | None,
                  created_at: datetime | None) -> dict[str, Any]:
    now = _utcnow()
    updated = updated_at or now
    created = created_at or min(updated, now)
    user_id = user_id or new_id("directory_user")
    user: dict[str, Any] = {
        "object": "directory_user",
        "id": user_id,
        "directory_id": directory["id"],
        "organization_id": directory["organization_id"],
        "idp_id": hashlib.sha256(user_id.encode()).hexdigest()[:20],
        "email": email,
        "first_name": first_name,
        "last_name": last_name,
        "name": " ".join(part for part in (first_name, last_name) if part) or None,
        "state": state,
        "custom_attributes": dict(custom_attributes or {}),
        # Emptied by WorkOS since 2026-04-15: consumers read email and custom_attributes.
        "emails": [],
        "job_title": None,
        "username": None,
        "raw_attributes": {},
        "created_at": _iso(created),
        "updated_at": _iso(max(created, updated)),
    }
    if role_slug:
        user["role"] = {"slug": role_slug}
        user["roles"] = [{"slug": role_slug}]
    return user


def _group_payload(directory: Mapping[str, Any], *, group_id: str | None, name: str,
                   updated_at: datetime | None, created_at: datetime | None) -> dict[str, Any]:
    now = _utcnow()
    updated = updated_at or now
    created = created_at or min(updated, now)
    group_id = group_id or new_id("directory_group")
    return {
        "object": "directory_group",
        "id": group_id,
        "idp_id": hashlib.sha256(group_id.encode()).hexdigest()[:20],
        "directory_id": directory["id"],
        "organization_id": directory["organization_id"],
        "name": name,
        "created_at": _iso(created),
        "updated_at": _iso(max(created, updated)),
        "raw_attributes": {},
    }


def _directory_event_payload(directory: Mapping[str, Any], domains: Iterable[Mapping[str, Any]],
                             state: str) -> dict[str, Any]:
    # dsync.activated's shape; dsync.deleted carries a subset (the SDK ignores the rest).
    return {
        "object": "directory",
        "id": directory["id"],
        "organization_id": directory["organization_id"],
        "type": directory["type"],
        "state": state,
        "name": directory["name"],
        "external_key": directory["external_key"],
        "domains": [{"object": "organization_domain", "id": domain["id"], "domain": domain["domain"]}
                    for domain in domains],
        "created_at": directory["created_at"],
        "updated_at": _iso(_utcnow()),
    }


def _changed_attributes(before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, Any]:
    keys = (before.keys() | after.keys()) - _NOT_ATTRIBUTES
    return {key: before.get(key) for key in sorted(keys) if before.get(key) != after.get(key)}


def _sso_profile(connection: Mapping[str, Any], *, email: str, first_name: str | None, last_name: str | None,
                 role_slugs: Sequence[str], groups: Sequence[str], profile_id: str | None,
                 idp_id: str | None) -> dict[str, Any]:
    """The Profile of ``POST /sso/token``. ``role_slugs`` in priority order; none -> the default role."""
    slugs = list(dict.fromkeys(role_slugs)) or [DEFAULT_SSO_ROLE]
    return {
        "object": "profile",
        # Derived from connection and email: a person keeps the same profile id at every sign-in, as with WorkOS.
        "id": profile_id or derived_id("prof", connection["id"], email.lower()),
        "organization_id": connection["organization_id"],
        "connection_id": connection["id"],
        "connection_type": connection["connection_type"],
        "idp_id": idp_id or hashlib.sha256(f"{connection['id']}\x1f{email.lower()}".encode()).hexdigest()[:20],
        "email": email,
        "first_name": first_name,
        "last_name": last_name,
        "name": " ".join(part for part in (first_name, last_name) if part) or None,
        "role": {"slug": slugs[0]},
        "roles": [{"slug": slug} for slug in slugs],
        "groups": list(groups),
        "custom_attributes": {},
        "raw_attributes": {},
    }


def _pkce_challenge(verifier: str) -> str:
    """S256: unpadded base64url of the SHA-256 of the verifier (RFC 7636)."""
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode("ascii", "replace")).digest()).rstrip(b"=").decode()


def _with_query(url: str, params: Mapping[str, str | None]) -> str:
    """``url`` with ``params`` (None values left out) appended to the query it already has."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True) + [(k, v) for k, v in params.items() if v is not None]
    return urlunsplit(parts._replace(query=urlencode(query)))


def _redirect_uri_matches(registered: str, uri: str) -> bool:
    """Exact match, or a ``*.`` wildcard standing for one subdomain label (``https://*.example.com/cb``)."""
    if "*" not in registered:
        return uri == registered
    pattern, candidate = urlsplit(registered), urlsplit(uri)
    suffix, host = (pattern.hostname or "")[1:], candidate.hostname or ""
    label = host[: -len(suffix)] if suffix.startswith(".") and host.endswith(suffix) else ""
    return (bool(label) and "." not in label and (pattern.scheme, pattern.port, pattern.path, pattern.query)
            == (candidate.scheme, candidate.port, candidate.path, candidate.query))


# --- the stand-in --------------------------------------------------------------------------------------


@dataclass
class _Logged:
    event: dict[str, Any]
    created: datetime
    organization_id: str | None


@dataclass
class _SignInRequest:
    """An ``/sso/authorize`` request whose page waits for the person's choice."""

    organization_id: str
    client_id: str
    redirect_uri: str
    state: str | None
    code_challenge: str | None
    expires: datetime


@dataclass
class _AuthorizationCode:
    client_id: str
    redirect_uri: str
    code_challenge: str | None
    profile: dict[str, Any]  # as at sign-in: later changes to the test user do not alter an issued code
    expires: datetime
    used: bool = False


@dataclass
class _Answer:
    status: int
    body: bytes
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


def _json_answer(status: int, payload: Any, headers: Mapping[str, str] | None = None) -> _Answer:
    return _Answer(status, json.dumps(payload, ensure_ascii=False).encode(), headers=dict(headers or {}))


def _oauth_error(status: int, error: str, description: str) -> _Answer:
    # /sso/token speaks OAuth: {"error", "error_description"}, which the SDK's errors carry as such.
    return _json_answer(status, {"error": error, "error_description": description}, {"Cache-Control": "no-store"})


def _html_answer(status: int, title: str, body_html: str) -> _Answer:
    page = (f'<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title></head>'
            f"<body><h1>{html.escape(title)}</h1>{body_html}</body></html>")
    return _Answer(status, page.encode(), content_type="text/html; charset=utf-8",
                   headers={"Cache-Control": "no-store"})


def _error_page(error: ApiError) -> _Answer:
    # id="message": what ``sign_in`` reads back into the ApiError it raises.
    return _html_answer(error.status, "WorkOS stand-in: sign-in error",
                        f'<p id="message">{html.escape(error.message)}</p>')


def _redirect(location: str) -> _Answer:
    return _Answer(302, b"", content_type="text/html; charset=utf-8",
                   headers={"Location": location, "Cache-Control": "no-store"})


class WorkOSStandIn(ServedOnAThread):
    """The WorkOS API on 127.0.0.1 for the SDK; see the module docstring for what it answers."""

    thread_name = "WorkOS stand-in"

    def __init__(self, *, api_key: str = DEFAULT_API_KEY, client_id: str = "client_local", port: int = 0,
                 requests_per_second: float | None = None, retention_days: int = 90,
                 redirect_uris: Sequence[str] | None = None) -> None:
        if requests_per_second is not None and requests_per_second < 1:
            raise ValueError("requests_per_second must be at least 1 (or None: no limit)")
        self.api_key = api_key
        self.client_id = client_id
        self.port = port
        self.requests_per_second = requests_per_second
        self.retention_days = retention_days
        # None: any http(s) redirect URI is accepted; else only these (one ``*.`` subdomain wildcard allowed).
        self.redirect_uris = list(redirect_uris) if redirect_uris is not None else None
        self.base_url = f"http://127.0.0.1:{port}" if port else ""
        self.portal_links: list[dict[str, Any]] = []
        self._lock = threading.RLock()
        self._organizations: dict[str, dict[str, Any]] = {}
        self._directories: dict[str, dict[str, Any]] = {}
        self._log: list[_Logged] = []  # in id order
        self._log_ids: list[str] = []
        self._latest: dict[str, dict[str, Any]] = {}  # object id -> its last payload, for previous_attributes
        self._links_by_secret: dict[str, tuple[dict[str, Any], datetime]] = {}
        self._recent_requests: dict[str, deque[float]] = {}
        self._connections: dict[str, dict[str, Any]] = {}  # by organization id: one SSO connection each
        self._sso_users: dict[str, dict[str, dict[str, Any]]] = {}  # organization id -> lowercased email -> Profile
        self._sign_in_requests: dict[str, _SignInRequest] = {}
        self._codes: dict[str, _AuthorizationCode] = {}
        self._log_requests = False

    # lifecycle

    def _make_server(self) -> _Server:
        server = _Server(("127.0.0.1", self.port), _Handler)
        server.standin = self
        return server

    # organizations

    def create_organization(self, name: str, domains: Sequence[str] = (), *, organization_id: str | None = None,
                            domain_data: Sequence[Mapping[str, Any]] = (), metadata: Mapping[str, str] | None = None,
                            external_id: str | None = None,
                            connection_type: str = DEFAULT_CONNECTION_TYPE) -> dict[str, Any]:
        """An Organization as ``POST /organizations`` creates it, with its SSO connection (see
        ``sso_connection``); raises ApiError (409: a domain or the id is taken, 422: a bad name or domain)."""
        if not isinstance(name, str) or not name.strip():
            raise _invalid("name", "required")
        if not isinstance(connection_type, str) or not connection_type:
            raise _invalid("connection_type")
        if metadata is not None and not (isinstance(metadata, Mapping)
                                         and all(isinstance(v, str) for v in metadata.values())):
            raise ApiError(400, "Metadata values must be strings.", code="invalid_metadata")
        wanted = [(domain, "legacy_verified") for domain in domains]
        for entry in domain_data:
            if not isinstance(entry, Mapping) or entry.get("state") not in ("verified", "pending"):
                raise _invalid("domain_data")
            wanted.append((entry.get("domain"), entry["state"]))
        with self._lock:
            organization_id = organization_id or new_id("org")
            if organization_id in self._organizations:
                raise ApiError(409, f"Organization '{organization_id}' already exists.")
            if external_id is not None and any(org["external_id"] == external_id
                                               for org in self._organizations.values()):
                raise ApiError(400, "External ID is already used by another organization.",
                               code="external_id_already_used")
            now = _iso(_utcnow())
            seen: set[str] = set()
            domain_objects = []
            for raw, state in wanted:
                domain = raw.strip().lower() if isinstance(raw, str) else ""
                if not domain or " " in domain or "." not in domain:
                    raise _invalid("domains")
                if domain in seen:
                    continue
                seen.add(domain)
                if self._domain_owner(domain) is not None:
                    raise ApiError(409, f"The domain '{domain}' is already in use by another organization.")
                domain_objects.append({
                    "object": "organization_domain", "id": new_id("org_domain"), "organization_id": organization_id,
                    "domain": domain, "state": state, "verification_strategy": "manual",
                    "created_at": now, "updated_at": now,
                })
            organization = {
                "object": "organization", "id": organization_id, "name": name.strip(), "domains": domain_objects,
                "metadata": dict(metadata or {}), "external_id": external_id, "stripe_customer_id": None,
                "allow_profiles_outside_organization": False, "created_at": now, "updated_at": now,
            }
            self._organizations[organization_id] = organization
            self._connections[organization_id] = {
                "object": "connection", "id": derived_id("conn", organization_id), "organization_id": organization_id,
                "connection_type": connection_type, "name": organization["name"], "state": "active",
                "created_at": now, "updated_at": now,
            }
            return copy.deepcopy(organization)

    def _domain_owner(self, domain: str) -> str | None:
        for organization in self._organizations.values():
            if any(entry["domain"] == domain for entry in organization["domains"]):
                return organization["id"]
        return None

    def _organization(self, organization_id: str) -> dict[str, Any]:
        with self._lock:
            organization = self._organizations.get(organization_id)
            if organization is None:
                raise _organization_not_found(organization_id)
            return copy.deepcopy(organization)

    # directories and events

    def add_directory(self, organization_id: str, *, directory_id: str | None = None, type: str = "okta scim v2.0",
                      name: str = "Okta") -> dict[str, Any]:
        """A directory of an existing organization (the Directory object). Emits no event: emit
        ``dsync.activated`` with ``directory_payload`` for that."""
        with self._lock:
            organization = self._organizations.get(organization_id)
            if organization is None:
                raise _organization_not_found(organization_id)
            directory_id = directory_id or new_id("directory")
            if directory_id in self._directories:
                raise ApiError(409, f"Directory '{directory_id}' already exists.")
            now = _iso(_utcnow())
            directory = {
                "object": "directory", "id": directory_id, "organization_id": organization_id,
                "external_key": secrets.token_urlsafe(12), "type": type, "state": "linked", "name": name,
                "domain": organization["domains"][0]["domain"] if organization["domains"] else None,
                "created_at": now, "updated_at": now,
            }
            self._directories[directory_id] = directory
            return copy.deepcopy(directory)

    def emit(self, event: str, data: Mapping[str, Any], *, created_at: datetime | None = None,
             event_id: str | None = None) -> dict[str, Any]:
        """Append ``{"object": "event", "id", "event", "data", "created_at"}`` to the log and return it.

        The id is new (or ``event_id``; a taken id raises ApiError 409) and places the event in the log;
        ``created_at`` (default now) only dates it, for retention and ranges.
        """
        # Dated to the millisecond it is served with, so that ranges compare what a client sees.
        created = _parse_iso(_iso(created_at or _utcnow()))
        payload = copy.deepcopy(dict(data))
        with self._lock:
            event_id = event_id or new_id("event")
            position = bisect.bisect_left(self._log_ids, event_id)
            if position < len(self._log_ids) and self._log_ids[position] == event_id:
                raise ApiError(409, f"Event '{event_id}' already exists.")
            if event.endswith(".updated") and "previous_attributes" not in payload and "id" in payload:
                payload["previous_attributes"] = _changed_attributes(self._latest.get(payload["id"], payload), payload)
            record = {"object": "event", "id": event_id, "event": event, "data": payload, "created_at": _iso(created)}
            self._log.insert(position, _Logged(record, created, self._organization_of(payload)))
            self._log_ids.insert(position, event_id)
            self._remember(payload)
            return copy.deepcopy(record)

    def _organization_of(self, data: Mapping[str, Any]) -> str | None:
        for candidate in (data, data.get("user"), data.get("group")):
            if isinstance(candidate, Mapping) and isinstance(candidate.get("organization_id"), str):
                return candidate["organization_id"]
        directory = self._directories.get(str(data.get("directory_id")))
        return directory["organization_id"] if directory else None

    def _remember(self, data: Mapping[str, Any]) -> None:
        for candidate in (data, data.get("user"), data.get("group")):
            if isinstance(candidate, Mapping) and candidate.get("object") in ("directory_user", "directory_group"):
                self._latest[candidate["id"]] = {k: v for k, v in candidate.items() if k != "previous_attributes"}

    def events(self) -> list[dict[str, Any]]:
        """A copy of the whole log, in order (retention does not apply)."""
        with self._lock:
            return [copy.deepcopy(logged.event) for logged in self._log]

    # payload builders

    def directory_user(self, directory: Mapping[str, Any], *, user_id: str | None = None, email: str | None,
                       first_name: str | None = None, last_name: str | None = None, state: str = "active",
                       role_slug: str | None = None, custom_attributes: Mapping[str, Any] | None = None,
                       updated_at: datetime | None = None, created_at: datetime | None = None) -> dict[str, Any]:
        """A Directory User (data of dsync.user.*). No ``role``/``roles`` without ``role_slug``, as for an
        environment without roles; ``emails``/``job_title``/``username``/``raw_attributes`` are empty."""
        return _user_payload(directory, user_id=user_id, email=email, first_name=first_name, last_name=last_name,
                             state=state, role_slug=role_slug, custom_attributes=custom_attributes,
                             updated_at=updated_at, created_at=created_at)

    def directory_group(self, directory: Mapping[str, Any], *, group_id: str | None = None, name: str,
                        updated_at: datetime | None = None, created_at: datetime | None = None) -> dict[str, Any]:
        """A Directory Group (data of dsync.group.*)."""
        return _group_payload(directory, group_id=group_id, name=name, updated_at=updated_at, created_at=created_at)

    def directory_payload(self, directory: Mapping[str, Any], *, state: str = "active") -> dict[str, Any]:
        """The data of dsync.activated (state ``active``) and dsync.deleted (pass ``deleting``)."""
        with self._lock:
            organization = self._organizations.get(directory["organization_id"])
            domains = copy.deepcopy(organization["domains"]) if organization else []
        return _directory_event_payload(directory, domains, state)

    def membership_payload(self, directory: Mapping[str, Any], user: Mapping[str, Any],
                           group: Mapping[str, Any]) -> dict[str, Any]:
        """The data of dsync.group.user_added / user_removed."""
        return {"directory_id": directory["id"], "user": copy.deepcopy(dict(user)), "group": copy.deepcopy(dict(group))}

    # SSO

    def sso_connection(self, organization_id: str) -> dict[str, Any]:
        """The organization's SSO connection: ``{"id": "conn_...", "organization_id", "connection_type", ...}``.
        Its id is derived from the organization id, so it survives a restart of the stand-in."""
        with self._lock:
            return copy.deepcopy(self._connection(organization_id))

    def _connection(self, organization_id: str) -> dict[str, Any]:
        connection = self._connections.get(organization_id)
        if connection is None:
            raise _organization_not_found(organization_id)
        return connection

    def add_sso_user(self, organization_id: str, email: str, *, first_name: str | None = None,
                     last_name: str | None = None, role: str | None = None, roles: Sequence[str] = (),
                     groups: Sequence[str] = (), profile_id: str | None = None,
                     idp_id: str | None = None) -> dict[str, Any]:
        """Add a test user to the organization's IdP, or replace the one with the same email (case-insensitive);
        returns the Profile a sign-in as this user yields.

        ``role`` is the highest-priority role slug and ``roles`` all of them (``role`` first); with neither
        the user has the default role ``member``. Ids not given are derived from the connection and the
        email (or kept from the user replaced). Raises ApiError: 404 unknown organization, 422 bad field.
        """
        if not _is_email(email):
            raise _invalid("email")
        for name, value in (("first_name", first_name), ("last_name", last_name), ("role", role),
                            ("profile_id", profile_id), ("idp_id", idp_id)):
            if value is not None and (not isinstance(value, str) or not value):
                raise _invalid(name)
        for name, values in (("roles", roles), ("groups", groups)):
            if isinstance(values, str) or not all(isinstance(value, str) and value for value in values):
                raise _invalid(name)
        with self._lock:
            connection = self._connection(organization_id)
            users = self._sso_users.setdefault(organization_id, {})
            known = users.get(email.lower(), {})
            profile = _sso_profile(connection, email=email, first_name=first_name, last_name=last_name,
                                   role_slugs=[*([role] if role else []), *roles], groups=groups,
                                   profile_id=profile_id or known.get("id"), idp_id=idp_id or known.get("idp_id"))
            users[email.lower()] = profile
            return copy.deepcopy(profile)

    def sso_users(self, organization_id: str | None = None) -> list[dict[str, Any]]:
        """The test users (as Profiles) of one organization, or of all, in the order they were added."""
        with self._lock:
            return [copy.deepcopy(profile) for org_id, users in self._sso_users.items()
                    if organization_id in (None, org_id) for profile in users.values()]

    def _sign_in_page(self, query: Mapping[str, list[str]]) -> _Answer:
        """``GET /sso/authorize``: check the request as WorkOS would, then show the IdP's sign-in page."""
        client_id = _single(query, "client_id")
        if client_id != self.client_id:
            raise ApiError(400, f"Invalid client_id: '{client_id}' is not this environment's client id.")
        if _single(query, "response_type") != "code":
            raise ApiError(400, "response_type must be 'code'.")
        redirect_uri = self._checked_redirect_uri(_single(query, "redirect_uri"))
        if _single(query, "provider") or _single(query, "domain"):
            raise ApiError(400, "The stand-in signs in through an organization's connection only: "
                                "pass organization or connection, not provider or domain.")
        challenge, method = _single(query, "code_challenge"), _single(query, "code_challenge_method")
        if challenge is not None or method is not None:
            if method != "S256":
                raise ApiError(400, "code_challenge_method must be S256 (with a code_challenge).")
            if not challenge or not re.fullmatch(r"[A-Za-z0-9_-]{43}", challenge):
                raise ApiError(400, "code_challenge must be the unpadded base64url SHA-256 of the code verifier.")
        with self._lock:
            connection = self._connection_for(_single(query, "organization"), _single(query, "connection"))
            organization = self._organizations[connection["organization_id"]]
            now = _utcnow()
            self._forget_expired(now)
            request_id = secrets.token_urlsafe(16)
            self._sign_in_requests[request_id] = _SignInRequest(
                organization_id=organization["id"], client_id=client_id, redirect_uri=redirect_uri,
                state=_single(query, "state"), code_challenge=challenge, expires=now + SSO_CODE_LIFETIME)
            users = [copy.deepcopy(profile) for profile in self._sso_users.get(organization["id"], {}).values()]
        hidden = f'<input type="hidden" name="request" value="{html.escape(request_id)}">'
        buttons = "".join(
            f'<form method="post" action="/sso/authorize/complete">{hidden}'
            f'<input type="hidden" name="user" value="{html.escape(user["id"])}">'
            f'<input type="hidden" name="email" value="{html.escape(user["email"])}">'
            f'<button type="submit">{html.escape(_describe_user(user))}</button></form>' for user in users)
        login_hint = html.escape(_single(query, "login_hint") or "")
        body = (
            f"<p>{html.escape(connection['connection_type'])} connection {html.escape(connection['id'])} of "
            f"{html.escape(organization['name'])} ({html.escape(organization['id'])}). After sign-in the browser "
            f"goes to {html.escape(redirect_uri)}.</p>"
            f"<h2>Test users</h2>{buttons or '<p>None yet: type one below.</p>'}"
            f'<h2>Another user</h2><form method="post" action="/sso/authorize/complete">{hidden}'
            f'<p><label>Email <input name="email" type="email" required value="{login_hint}"></label></p>'
            '<p><label>First name <input name="first_name" value=""></label></p>'
            '<p><label>Last name <input name="last_name" value=""></label></p>'
            '<p><label>Role slug(s), highest first <input name="role" value=""></label></p>'
            '<p><label>Groups, comma-separated <input name="groups" value=""></label></p>'
            '<p><button type="submit">Sign in</button></p></form>'
            f'<form method="post" action="/sso/authorize/complete">{hidden}'
            '<input type="hidden" name="decision" value="deny"><button type="submit">Deny</button></form>')
        return _html_answer(200, f"Sign in to {organization['name']} (WorkOS stand-in)", body)

    def _complete_sign_in(self, body: bytes) -> _Answer:
        """``POST /sso/authorize/complete``: the page's choice -> 302 to the redirect URI with a code or an error."""
        fields = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
        request_id = _single(fields, "request") or ""
        with self._lock:
            pending = self._sign_in_requests.get(request_id)
            if pending is None or _utcnow() >= pending.expires:
                raise ApiError(400, "This sign-in page is unknown, expired or already used: "
                                    "start the sign-in again from the app.")
            if _single(fields, "decision") == "deny":
                location = _with_query(pending.redirect_uri, {
                    "error": "access_denied",
                    "error_description": "The user denied the sign-in at the identity provider (WorkOS stand-in).",
                    "state": pending.state})
            else:
                profile = self._chosen_user(pending.organization_id, fields)
                code = self._issue_code(pending.client_id, pending.redirect_uri, pending.code_challenge, profile)
                location = _with_query(pending.redirect_uri, {"code": code, "state": pending.state})
            del self._sign_in_requests[request_id]  # only now: a mistyped form can be corrected and sent again
        return _redirect(location)

    def _chosen_user(self, organization_id: str, fields: Mapping[str, list[str]]) -> dict[str, Any]:
        """The user of a button (``user``) or of the typed form, which adds the user or updates the fields given."""
        user_id = _single(fields, "user")
        users = self._sso_users.get(organization_id, {})
        if user_id:
            for profile in users.values():
                if profile["id"] == user_id:
                    return profile
            raise ApiError(400, f"No test user '{user_id}' in this organization.")
        email = (_single(fields, "email") or "").strip()
        if not _is_email(email):
            raise ApiError(400, f"Type the user's email address ('{email}' is not one).")
        known = users.get(email.lower(), {})
        typed = {name: (_single(fields, name) or "").strip() for name in ("first_name", "last_name", "role", "groups")}
        role_slugs = _comma_list(typed["role"]) or [role["slug"] for role in known.get("roles", [])]
        return self.add_sso_user(
            organization_id, email, first_name=typed["first_name"] or known.get("first_name"),
            last_name=typed["last_name"] or known.get("last_name"), roles=role_slugs,
            groups=_comma_list(typed["groups"]) or known.get("groups", []))

    def _idp_initiated(self, query: Mapping[str, list[str]]) -> _Answer:
        """``GET /sso/idp_initiated``: a sign-in started at the IdP: 302 with a code and, as WorkOS does, no state."""
        registered = [uri for uri in self.redirect_uris or () if "*" not in uri]
        redirect_uri = self._checked_redirect_uri(_single(query, "redirect_uri") or (registered[:1] or [None])[0])
        email = (_single(query, "email") or "").strip()
        if not _is_email(email):
            raise ApiError(400, "email is required: the user who signs in at the IdP.")
        with self._lock:
            connection = self._connection_for(_single(query, "organization"), _single(query, "connection"))
            organization_id = connection["organization_id"]
            known = self._sso_users.get(organization_id, {}).get(email.lower())
            profile = known or self.add_sso_user(organization_id, email)  # a new email: the IdP knows them
            code = self._issue_code(self.client_id, redirect_uri, None, profile)
        return _redirect(_with_query(redirect_uri, {"code": code}))

    def _checked_redirect_uri(self, redirect_uri: str | None) -> str:
        if not redirect_uri:
            raise ApiError(400, "redirect_uri is required.")
        parts = urlsplit(redirect_uri)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.fragment:
            raise ApiError(400, f"Invalid redirect_uri '{redirect_uri}': an absolute http(s) URL without fragment.")
        if self.redirect_uris is not None and not any(
                _redirect_uri_matches(registered, redirect_uri) for registered in self.redirect_uris):
            raise ApiError(400, f"The redirect_uri '{redirect_uri}' is not one of the configured redirect URIs.")
        return redirect_uri

    def _connection_for(self, organization_id: str | None, connection_id: str | None) -> dict[str, Any]:
        by_id = {connection["id"]: connection for connection in self._connections.values()}
        if connection_id is not None and connection_id not in by_id:
            raise ApiError(400, f"Connection '{connection_id}' not found.")
        if organization_id is not None and organization_id not in self._connections:
            raise ApiError(400, f"Organization '{organization_id}' not found or without an SSO connection.")
        if organization_id is None and connection_id is None:
            raise ApiError(400, "Pass organization or connection.")
        if organization_id is not None and connection_id is not None \
                and by_id[connection_id]["organization_id"] != organization_id:
            raise ApiError(400, f"Connection '{connection_id}' does not belong to organization '{organization_id}'.")
        return by_id[connection_id] if connection_id is not None else self._connections[str(organization_id)]

    def _issue_code(self, client_id: str, redirect_uri: str, code_challenge: str | None,
                    profile: Mapping[str, Any]) -> str:
        now = _utcnow()
        self._forget_expired(now)
        code = secrets.token_urlsafe(32)
        self._codes[code] = _AuthorizationCode(client_id=client_id, redirect_uri=redirect_uri,
                                               code_challenge=code_challenge, profile=copy.deepcopy(dict(profile)),
                                               expires=now + SSO_CODE_LIFETIME)
        return code

    def _forget_expired(self, now: datetime) -> None:
        for store in (self._sign_in_requests, self._codes):
            for key in [key for key, item in store.items() if item.expires <= now]:
                del store[key]

    def _token(self, headers: Mapping[str, str], body: bytes) -> _Answer:
        """``POST /sso/token``: a code for the Profile, checking what the SDK sends (see the module docstring)."""
        if (headers.get("Content-Type") or "").startswith("application/x-www-form-urlencoded"):
            fields: dict[str, Any] = {k: v[-1] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}
        else:
            fields = _json_object(body)
        authorization, secret = headers.get("Authorization"), fields.get("client_secret")
        if authorization is not None and authorization != f"Bearer {self.api_key}":
            raise ApiError(401, "Unauthorized", code="unauthorized")
        if secret is not None and secret != self.api_key:
            return _oauth_error(401, "invalid_client", "Invalid client secret.")
        # A public client (PKCE, no API key) sends neither; then the code_verifier alone proves the client.
        authenticated = authorization is not None or secret is not None
        if authenticated and (retry_after := self._refused(self.api_key)) is not None:
            raise ApiError(429, "Too many requests", code="rate_limit_exceeded",
                           headers={"Retry-After": str(retry_after)})
        if fields.get("grant_type") != "authorization_code":
            return _oauth_error(400, "unsupported_grant_type", "grant_type must be authorization_code.")
        code, client_id, verifier = fields.get("code"), fields.get("client_id"), fields.get("code_verifier")
        if not isinstance(code, str) or not code or not isinstance(client_id, str) or not client_id:
            return _oauth_error(400, "invalid_request", "code and client_id are required.")
        with self._lock:
            record = self._codes.get(code)
            if record is None or _utcnow() >= record.expires:
                return _oauth_error(400, "invalid_grant", f"The code '{code}' has expired or is invalid.")
            if record.used:
                return _oauth_error(400, "invalid_grant", f"The code '{code}' has already been used.")
            if client_id != record.client_id:
                return _oauth_error(400, "invalid_grant", f"The code was not issued to client '{client_id}'.")
            if fields.get("redirect_uri") not in (None, record.redirect_uri):
                return _oauth_error(400, "invalid_grant", "redirect_uri differs from the authorization request's.")
            if record.code_challenge is None:
                if verifier is not None:
                    return _oauth_error(400, "invalid_grant",
                                        "code_verifier sent, but the authorization request had no code_challenge.")
                if not authenticated:
                    return _oauth_error(401, "invalid_client", "client_secret is required without PKCE.")
            elif not isinstance(verifier, str) or not verifier:
                return _oauth_error(400, "invalid_grant",
                                    "code_verifier is required: the authorization request had a code_challenge.")
            elif _pkce_challenge(verifier) != record.code_challenge:
                return _oauth_error(400, "invalid_grant", "code_verifier does not match the code_challenge.")
            record.used = True  # only a successful exchange spends the code
            profile = copy.deepcopy(record.profile)
        return _json_answer(200, {"token_type": "Bearer", "access_token": secrets.token_urlsafe(32),
                                  "expires_in": SSO_ACCESS_TOKEN_SECONDS, "profile": profile},
                            {"Cache-Control": "no-store"})

    # HTTP

    def _handle(self, method: str, target: str, headers: Mapping[str, str], body: bytes) -> _Answer:
        url = urlsplit(target)
        path = url.path.rstrip("/") or "/"
        query = parse_qs(url.query, keep_blank_values=True)
        if method == "GET" and path == "/portal/launch":
            return self._launch_page(query)  # a browser follows the link: no API key
        if (method, path) in _BROWSER_SSO_ROUTES:  # a browser again: no API key, errors as pages
            try:
                if path == "/sso/authorize":
                    return self._sign_in_page(query)
                if path == "/sso/idp_initiated":
                    return self._idp_initiated(query)
                return self._complete_sign_in(body)
            except ApiError as error:
                return _error_page(error)
        if method == "POST" and path == "/sso/token":
            return self._token(headers, body)  # authenticates the client itself (API key or PKCE)
        if headers.get("Authorization", "") != f"Bearer {self.api_key}":
            raise ApiError(401, "Unauthorized", code="unauthorized")
        control = path.startswith("/_standin/")
        if not control and (retry_after := self._refused(self.api_key)) is not None:
            raise ApiError(429, "Too many requests", code="rate_limit_exceeded",
                           headers={"Retry-After": str(retry_after)})
        parts = path.strip("/").split("/")
        if method == "GET" and path == "/events":
            return _json_answer(200, self._list_events(query))
        if method == "POST" and path == "/portal/generate_link":
            return _json_answer(201, self._generate_link(_json_object(body)))
        if method == "POST" and path == "/organizations":
            fields = _json_object(body)
            return _json_answer(201, self.create_organization(
                fields.get("name"), _string_list(fields.get("domains"), "domains"),
                domain_data=_object_list(fields.get("domain_data"), "domain_data"),
                metadata=fields.get("metadata"), external_id=fields.get("external_id")))
        if method == "GET" and path == "/organizations":
            return _json_answer(200, self._list_organizations(query))
        if method == "GET" and len(parts) == 2 and parts[0] == "organizations":
            return _json_answer(200, self._organization(parts[1]))
        if control:
            return self._control(method, path, query, body)
        raise ApiError(404, "Not Found", code="not_found")

    def _refused(self, api_key: str) -> int | None:
        """Seconds to wait when ``api_key`` used up its requests of the last second, else None (counted)."""
        if self.requests_per_second is None:
            return None
        now = time.monotonic()
        with self._lock:
            recent = self._recent_requests.setdefault(api_key, deque())
            while recent and now - recent[0] >= 1.0:
                recent.popleft()
            if len(recent) >= int(self.requests_per_second):
                return max(1, math.ceil(recent[0] + 1.0 - now))
            recent.append(now)
            return None

    def _list_events(self, query: Mapping[str, list[str]]) -> dict[str, Any]:
        names = [name.strip() for value in query.get("events", []) for name in value.split(",") if name.strip()]
        if not names:
            raise _invalid("events", "required")
        for name in names:
            if not _EVENT_NAME.fullmatch(name):
                raise ApiError(400, f"Invalid name parameter, received: '{name}'. You must pass in valid event names",
                               code="invalid_events_request")
        limit, order, before, after = _list_parameters(query, default_order="asc")
        range_start, range_end = _range_bound(query, "range_start"), _range_bound(query, "range_end")
        organization_id = _single(query, "organization_id")
        oldest_served = _utcnow() - timedelta(days=self.retention_days)
        wanted = set(names)

        def matches(logged: _Logged) -> bool:
            return (logged.event["event"] in wanted and logged.created > oldest_served
                    and (range_start is None or logged.created > range_start)
                    and (range_end is None or logged.created < range_end)
                    and (organization_id is None or logged.organization_id == organization_id))

        with self._lock:
            if order == "asc" and after is not None and before is None:
                # A poller paging forward: scan from the cursor, not the whole log (a catch-up of
                # 100,000 events would otherwise cost the square of that).
                return copy.deepcopy(self._page_forward(matches, after, limit))
            matching = [logged.event for logged in self._log if matches(logged)]
            page = _page(matching, order=order, limit=limit, before=before, after=after)
            return copy.deepcopy(page)

    def _page_forward(self, matches: Any, after: str, limit: int) -> dict[str, Any]:
        """What ``_page`` answers for ``order=asc&after=...``, scanning only from the cursor."""
        position = bisect.bisect_right(self._log_ids, after)
        page: list[dict[str, Any]] = []
        more = False
        for logged in itertools.islice(self._log, position, None):
            if matches(logged):
                if len(page) == limit:
                    more = True
                    break
                page.append(logged.event)
        earlier = any(matches(self._log[index]) for index in range(position - 1, -1, -1))
        return {"object": "list", "data": page, "list_metadata": {
            "before": page[0]["id"] if page and earlier else None, "after": page[-1]["id"] if more else None}}

    def _list_organizations(self, query: Mapping[str, list[str]]) -> dict[str, Any]:
        limit, order, before, after = _list_parameters(query, default_order="normal")
        domains = {name.strip().lower() for value in query.get("domains", []) for name in value.split(",") if name}
        search = (_single(query, "search") or "").lower()
        with self._lock:
            matching = [organization for organization in sorted(self._organizations.values(), key=lambda o: o["id"])
                        if search in organization["name"].lower()
                        and (not domains or any(entry["domain"] in domains for entry in organization["domains"]))]
            return copy.deepcopy(_page(matching, order=order, limit=limit, before=before, after=after))

    def _generate_link(self, fields: Mapping[str, Any]) -> dict[str, str]:
        organization_id = fields.get("organization")
        if not isinstance(organization_id, str) or not organization_id:
            raise _invalid("organization", "required")
        with self._lock:
            if organization_id not in self._organizations:
                raise _organization_not_found(organization_id)
            intent = fields.get("intent")
            if intent is None:
                raise _invalid("intent", "required")
            if intent not in PORTAL_INTENTS:
                raise _invalid("intent")
            secret = secrets.token_urlsafe(24)
            link = f"{self.base_url}/portal/launch?secret={secret}"
            created = _utcnow()
            record = {
                "organization": organization_id, "intent": intent, "link": link,
                "return_url": fields.get("return_url"), "success_url": fields.get("success_url"),
                "external_user_id": fields.get("external_user_id"),
                "created_at": _iso(created), "expires_at": _iso(created + PORTAL_LINK_LIFETIME),
            }
            self.portal_links.append(record)
            self._links_by_secret[secret] = (record, created + PORTAL_LINK_LIFETIME)
        return {"link": link}

    def _launch_page(self, query: Mapping[str, list[str]]) -> _Answer:
        with self._lock:
            found = self._links_by_secret.get(_single(query, "secret") or "")
            if found is None or _utcnow() >= found[1]:
                raise ApiError(404, "This Admin Portal link is invalid or has expired.", code="not_found")
            record = found[0]
            organization = self._organizations[record["organization"]]
        title = f"WorkOS Admin Portal (local stand-in): {record['intent']} for {organization['name']}"
        links = "".join(f'<p><a href="{html.escape(url)}">{label}</a></p>'
                        for label, url in (("Finish setup", record["success_url"]), ("Back", record["return_url"]))
                        if url)
        page = (f"<!doctype html><html><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title></head>"
                f"<body><h1>{html.escape(title)}</h1><p>Organization {html.escape(organization['id'])}. "
                f"This page stands in for the hosted Admin Portal: nothing is set up here.</p>{links}</body></html>")
        return _Answer(200, page.encode(), content_type="text/html; charset=utf-8")

    def _control(self, method: str, path: str, query: Mapping[str, list[str]], body: bytes) -> _Answer:
        if method == "GET" and path == "/_standin/events":
            return _json_answer(200, self.events())
        if method == "GET" and path == "/_standin/sso_users":
            return _json_answer(200, self.sso_users(_single(query, "organization_id")))
        if method == "GET" and path == "/_standin/portal_links":
            with self._lock:
                return _json_answer(200, copy.deepcopy(self.portal_links))
        if method != "POST":
            raise ApiError(404, "Not Found", code="not_found")
        fields = _json_object(body)
        if path == "/_standin/organizations":
            with self._lock:
                existing = self._organizations.get(str(fields.get("id")))
                if existing is not None:
                    return _json_answer(200, copy.deepcopy(existing))
                return _json_answer(201, self.create_organization(
                    fields.get("name"), _string_list(fields.get("domains"), "domains"),
                    organization_id=fields.get("id"),
                    domain_data=_object_list(fields.get("domain_data"), "domain_data"),
                    connection_type=fields.get("connection_type") or DEFAULT_CONNECTION_TYPE))
        if path == "/_standin/sso_users":
            organization_id, email = fields.get("organization_id"), fields.get("email")
            if not isinstance(organization_id, str) or not organization_id:
                raise _invalid("organization_id", "required")
            if not isinstance(email, str):
                raise _invalid("email", "required")
            with self._lock:
                replaced = email.lower() in self._sso_users.get(organization_id, {})
                profile = self.add_sso_user(
                    organization_id, email, first_name=fields.get("first_name"), last_name=fields.get("last_name"),
                    role=fields.get("role"), roles=_string_list(fields.get("roles"), "roles"),
                    groups=_string_list(fields.get("groups"), "groups"), profile_id=fields.get("profile_id"),
                    idp_id=fields.get("idp_id"))
            return _json_answer(200 if replaced else 201, profile)
        if path == "/_standin/directories":
            with self._lock:
                existing = self._directories.get(str(fields.get("id")))
                if existing is not None:
                    if fields.get("organization_id") not in (None, existing["organization_id"]):
                        raise ApiError(409, f"Directory '{existing['id']}' belongs to {existing['organization_id']}.")
                    return _json_answer(200, copy.deepcopy(existing))
                if not isinstance(fields.get("organization_id"), str):
                    raise _invalid("organization_id", "required")
                return _json_answer(201, self.add_directory(
                    fields["organization_id"], directory_id=fields.get("id"),
                    type=fields.get("type") or "okta scim v2.0", name=fields.get("name") or "Okta"))
        if path == "/_standin/events":
            if not isinstance(fields.get("event"), str) or not _EVENT_NAME.fullmatch(fields["event"]):
                raise _invalid("event", "required")
            if not isinstance(fields.get("data"), dict):
                raise _invalid("data", "required")
            try:
                created = _parse_iso(fields["created_at"]) if fields.get("created_at") else None
            except (TypeError, ValueError):
                raise _invalid("created_at") from None
            return _json_answer(201, self.emit(fields["event"], fields["data"], created_at=created,
                                               event_id=fields.get("id")))
        raise ApiError(404, "Not Found", code="not_found")


# --- request parsing and paging ---------------------------------------------------------------------------

_BROWSER_SSO_ROUTES = frozenset({("GET", "/sso/authorize"), ("POST", "/sso/authorize/complete"),
                                 ("GET", "/sso/idp_initiated")})


def _is_email(value: Any) -> bool:
    return isinstance(value, str) and re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", value) is not None


def _comma_list(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def _describe_user(profile: Mapping[str, Any]) -> str:
    roles = ", ".join(role["slug"] for role in profile["roles"])
    groups = ", ".join(profile["groups"]) or "none"
    name = f"{profile['name']} " if profile["name"] else ""
    return f"{name}<{profile['email']}> — roles: {roles}; groups: {groups}"


def _json_object(body: bytes) -> dict[str, Any]:
    if not body.strip():
        return {}
    try:
        parsed = json.loads(body)
    except ValueError:
        raise ApiError(400, "The request body is not valid JSON.", code="invalid_request_body") from None
    if not isinstance(parsed, dict):
        raise ApiError(400, "The request body must be a JSON object.", code="invalid_request_body")
    return parsed


def _string_list(value: Any, field_name: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise _invalid(field_name)
    return value


def _object_list(value: Any, field_name: str) -> list[dict[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise _invalid(field_name)
    return value


def _single(query: Mapping[str, list[str]], name: str) -> str | None:
    values = query.get(name)
    return values[-1] if values else None


def _list_parameters(query: Mapping[str, list[str]], *, default_order: str) -> tuple[int, str, str | None, str | None]:
    raw_limit = _single(query, "limit")
    try:
        limit = 10 if raw_limit is None else int(raw_limit)
    except ValueError:
        raise _invalid("limit") from None
    if not 1 <= limit <= 100:
        raise _invalid("limit")
    order = _single(query, "order") or default_order
    if order not in ("asc", "desc", "normal"):
        raise _invalid("order")
    before, after = _single(query, "before") or None, _single(query, "after") or None
    if before and after:
        raise _invalid("before")
    return limit, order, before, after


def _range_bound(query: Mapping[str, list[str]], name: str) -> datetime | None:
    value = _single(query, name)
    if not value:
        return None
    # The SDK documents that only the Z form is accepted, not offsets such as +00:00.
    if not value.endswith("Z"):
        raise _invalid(name)
    try:
        return _parse_iso(value)
    except ValueError:
        raise _invalid(name) from None


def _page(items: list[dict[str, Any]], *, order: str, limit: int, before: str | None,
          after: str | None) -> dict[str, Any]:
    """One page of ``items`` (ascending by id) as ``{"object": "list", "data", "list_metadata"}``.

    ``asc`` lists oldest first, ``desc`` and ``normal`` newest first. With ``asc``/``desc`` ``after``
    moves on in listing order and ``before`` back; ``normal`` reverses the cursors (``before``: older).
    A cursor in list_metadata is set only when there is something in that direction.
    """
    ids = [item["id"] for item in items]
    ascending = order == "asc"
    listing = items if ascending else items[::-1]
    forward, backward = (before, after) if order == "normal" else (after, before)
    if forward is not None:
        # Items at or before the cursor in listing order form a prefix of the listing.
        start = bisect.bisect_right(ids, forward) if ascending else len(ids) - bisect.bisect_left(ids, forward)
        end = min(start + limit, len(listing))
    elif backward is not None:
        end = bisect.bisect_left(ids, backward) if ascending else len(ids) - bisect.bisect_right(ids, backward)
        start = max(0, end - limit)
    else:
        start, end = 0, min(limit, len(listing))
    page = listing[start:end]
    ahead = page[-1]["id"] if page and end < len(listing) else None
    behind = page[0]["id"] if page and start > 0 else None
    metadata = {"before": ahead, "after": behind} if order == "normal" else {"before": behind, "after": ahead}
    return {"object": "list", "data": page, "list_metadata": metadata}


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    standin: WorkOSStandIn


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"  # keep-alive, as the SDK's pooled client expects
    # Headers and body go out as two writes: without TCP_NODELAY, Nagle holds the body back until the
    # client's delayed ACK (40 ms) on a kept-alive connection.
    disable_nagle_algorithm = True

    def _dispatch(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        try:
            answer = self.server.standin._handle(self.command, self.path, self.headers, body)
        except ApiError as error:
            answer = _json_answer(error.status, error.body(), error.headers)
        except Exception:  # a bug of the stand-in: answer as WorkOS would and keep serving
            import traceback

            traceback.print_exc()
            answer = _json_answer(500, {"message": "Internal Server Error", "code": "server_error"})
        write_answer(self, answer.status, answer.content_type, answer.body,
                     {"X-Request-ID": str(uuid.uuid4()), **answer.headers})

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _dispatch

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.standin._log_requests:
            sys.stderr.write(f"workos stand-in: {format % args}\n")


# --- a browser on the sign-in page (tests without a browser) -------------------------------------------------

_USER_FIELDS = frozenset({"first_name", "last_name", "role", "roles", "groups"})


class _FormReader(HTMLParser):
    """The forms of a page as (action, {input name: value}); attribute values come unescaped."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[tuple[str, dict[str, str]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {name: value or "" for name, value in attrs}
        if tag == "form":
            self.forms.append((attributes.get("action", ""), {}))
        elif tag == "input" and self.forms and attributes.get("name"):
            self.forms[-1][1][attributes["name"]] = attributes.get("value", "")


def _page_error(response: httpx.Response) -> ApiError:
    found = re.search(r'<p id="message">(.*?)</p>', response.text, re.DOTALL)
    message = html.unescape(found.group(1)) if found else response.text[:500]
    return ApiError(response.status_code, message)


def _press(authorization_url: str, choose: Any, timeout: float) -> str:
    """Open the sign-in page, send the form ``choose(forms)`` picks and fills, return the redirect's Location."""
    with httpx.Client(timeout=timeout) as browser:
        page = browser.get(authorization_url)
        if page.status_code != 200:
            raise _page_error(page)
        reader = _FormReader()
        reader.feed(page.text)
        action, fields = choose(reader.forms)
        answer = browser.post(urljoin(str(page.url), action), data=fields)
    if answer.status_code != 302:
        raise _page_error(answer)
    return answer.headers["Location"]


def sign_in(authorization_url: str, email: str, *, timeout: float = 10.0, **user_fields: Any) -> str:
    """What a person and their browser do on the stand-in's sign-in page: returns the Location it redirects
    to (the app's redirect URI with ``code`` and ``state``). Works against a stand-in in another process.

    Without ``user_fields`` a test user the page lists with ``email`` is picked by its button; otherwise (or
    for an email not listed) the form is filled in, which adds the user or updates the fields given.
    ``user_fields``: ``first_name``, ``last_name``, ``role`` (a slug), ``roles`` and ``groups`` (lists or
    comma-separated). A page or form refused raises ApiError with the status and the page's message.
    """
    if unknown := set(user_fields) - _USER_FIELDS:
        raise TypeError(f"sign_in got unknown user fields: {', '.join(sorted(unknown))}")

    def listed(value: Any) -> list[str]:
        return _comma_list(value) if isinstance(value, str) else [str(item) for item in value or ()]

    def choose(forms: list[tuple[str, dict[str, str]]]) -> tuple[str, dict[str, str]]:
        if not user_fields:
            for action, fields in forms:
                if fields.get("user") and fields.get("email", "").lower() == email.lower():
                    return action, fields
        action, fields = next(form for form in forms if "first_name" in form[1])
        roles = [*listed(user_fields.get("role")), *listed(user_fields.get("roles"))]
        return action, {**fields, "email": email, "first_name": user_fields.get("first_name") or "",
                        "last_name": user_fields.get("last_name") or "", "role": ",".join(roles),
                        "groups": ",".join(listed(user_fields.get("groups")))}

    return _press(authorization_url, choose, timeout)


def deny(authorization_url: str, *, timeout: float = 10.0) -> str:
    """Press the page's Deny button: returns the Location (the redirect URI with ``error=access_denied``)."""
    return _press(authorization_url, lambda forms: next(form for form in forms if form[1].get("decision") == "deny"),
                  timeout)


# --- command line ------------------------------------------------------------------------------------------

SEND_EVENTS = (
    "dsync.activated", "dsync.deleted",
    "dsync.user.created", "dsync.user.updated", "dsync.user.deleted",
    "dsync.group.created", "dsync.group.updated", "dsync.group.deleted",
    "dsync.group.user_added", "dsync.group.user_removed",
)


class _SendFailed(Exception):
    pass


def _fail(message: str) -> NoReturn:
    raise _SendFailed(message)


def _control_call(client: httpx.Client, method: str, path: str, payload: Mapping[str, Any] | None = None) -> Any:
    try:
        response = client.request(method, path, json=payload)
    except httpx.TransportError as error:
        _fail(f"cannot reach the stand-in at {client.base_url}: {error} (is `python -m local.workos serve` running?)")
    if response.status_code >= 400:
        _fail(f"the stand-in answered {method} {path} with {response.status_code}: {response.text}")
    return response.json()


def _last_payload(log: Sequence[Mapping[str, Any]], object_id: str) -> dict[str, Any] | None:
    found = None
    for event in log:
        data = event.get("data") or {}
        for candidate in (data, data.get("user"), data.get("group")):
            if isinstance(candidate, Mapping) and candidate.get("id") == object_id:
                found = {k: v for k, v in candidate.items() if k != "previous_attributes"}
    return found


def _send_user(args: argparse.Namespace, directory: Mapping[str, Any], log: Sequence[Mapping[str, Any]]) -> dict:
    if not args.email:
        _fail(f"{args.event_type} needs --email (the directory user's id is derived from it)")
    user_id = derived_id("directory_user", directory["id"], args.email.lower())
    known = _last_payload(log, user_id) or {}
    attributes = {**known.get("custom_attributes", {}), **dict(args.attr)}
    role = args.role or (known.get("role") or {}).get("slug")
    return _user_payload(
        directory, user_id=user_id, email=args.email,
        first_name=args.first_name if args.first_name is not None else known.get("first_name"),
        last_name=args.last_name if args.last_name is not None else known.get("last_name"),
        state=args.state or known.get("state", "active"), role_slug=role, custom_attributes=attributes,
        updated_at=None, created_at=_parse_iso(known["created_at"]) if known else None)


def _send_group(args: argparse.Namespace, directory: Mapping[str, Any], log: Sequence[Mapping[str, Any]]) -> dict:
    if not args.group:
        _fail(f"{args.event_type} needs --group NAME (the directory group's id is derived from it)")
    group_id = derived_id("directory_group", directory["id"], args.group.lower())
    known = _last_payload(log, group_id) or {}
    return _group_payload(directory, group_id=group_id, name=args.group, updated_at=None,
                          created_at=_parse_iso(known["created_at"]) if known else None)


def _send(args: argparse.Namespace) -> int:
    if args.app and not args.secret:
        _fail("--app needs --secret, the webhook secret the app verifies signatures with")
    if not args.organization and not args.directory:
        _fail("give --organization (and optionally --directory) so the event belongs somewhere")
    with httpx.Client(base_url=args.standin, headers={"Authorization": f"Bearer {args.api_key}"},
                      timeout=10) as standin:
        if args.organization:
            _control_call(standin, "POST", "/_standin/organizations",
                          {"id": args.organization, "name": args.organization_name or args.organization,
                           "domains": args.domain})
        directory_id = args.directory or derived_id("directory", args.organization)
        directory = _control_call(standin, "POST", "/_standin/directories",
                                  {"id": directory_id, "organization_id": args.organization})
        log = _control_call(standin, "GET", "/_standin/events")
        kind = args.event_type
        if kind in ("dsync.activated", "dsync.deleted"):
            organization = _control_call(standin, "GET", f"/organizations/{directory['organization_id']}")
            data = _directory_event_payload(directory, organization["domains"],
                                            "active" if kind == "dsync.activated" else "deleting")
        elif kind.startswith("dsync.user."):
            data = _send_user(args, directory, log)
        elif kind in ("dsync.group.user_added", "dsync.group.user_removed"):
            data = {"directory_id": directory["id"], "user": _send_user(args, directory, log),
                    "group": _send_group(args, directory, log)}
        else:
            data = _send_group(args, directory, log)
        event = _control_call(standin, "POST", "/_standin/events", {"event": kind, "data": data})
    if not args.app:
        print(f"{event['id']} {kind} (in the Events API only: no --app given)")
        return 0
    try:
        response = send_webhook(args.app, event, args.secret)
    except httpx.TransportError as error:
        print(f"{event['id']} {kind} -> could not reach {args.app}: {error}", file=sys.stderr)
        print("the event stays in the Events API, as a failed WorkOS delivery would", file=sys.stderr)
        return 1
    print(f"{event['id']} {kind} -> {response.status_code} {response.reason_phrase}")
    if not response.is_success:
        print(response.text[:2000], file=sys.stderr)
        return 1
    return 0


def _serve(args: argparse.Namespace) -> int:
    standin = WorkOSStandIn(api_key=args.api_key, client_id=args.client_id, port=args.port,
                            requests_per_second=args.requests_per_second, retention_days=args.retention_days,
                            redirect_uris=args.redirect_uri or None)
    standin._log_requests = not args.quiet
    return serve_in_foreground(standin, args.port, "WorkOS stand-in on {base_url}  (Ctrl-C stops it)\n"
                               f"  WORKOS_BASE_URL={{base_url}} WORKOS_API_KEY={args.api_key}"
                               f" WORKOS_CLIENT_ID={args.client_id}")


def _key_value(text: str) -> tuple[str, str]:
    key, separator, value = text.partition("=")
    if not separator or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key, value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m local.workos",
        description="A local stand-in of the WorkOS API (Events API, Admin Portal links, organizations, SSO) "
                    "that the workos SDK talks to through WORKOS_BASE_URL.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser(
        "serve", help="run the stand-in in the foreground until Ctrl-C",
        description="Run the stand-in on 127.0.0.1 until Ctrl-C. Point the app at it with "
                    "WORKOS_BASE_URL=http://127.0.0.1:PORT and WORKOS_API_KEY=KEY.")
    serve.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port to listen on (default {DEFAULT_PORT})")
    serve.add_argument("--api-key", default=DEFAULT_API_KEY,
                       help=f"the only API key accepted as Bearer token (default {DEFAULT_API_KEY})")
    serve.add_argument("--client-id", default="client_local",
                       help="the client id /sso/authorize and /sso/token accept (default client_local)")
    serve.add_argument("--redirect-uri", action="append", default=[], metavar="URI",
                       help="a redirect URI SSO may send the browser to (repeatable; one *. subdomain wildcard "
                            "allowed; default: any http(s) URI)")
    serve.add_argument("--requests-per-second", type=float, default=None, metavar="N",
                       help="answer 429 with Retry-After beyond N requests per second per key (default: no limit)")
    serve.add_argument("--retention-days", type=int, default=90,
                       help="events older than this are not served by GET /events (default 90)")
    serve.add_argument("--quiet", action="store_true", help="do not log each request to stderr")

    send = commands.add_parser(
        "send", help="create a dsync event in a running stand-in and deliver it as a signed webhook",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Create EVENT_TYPE through the running stand-in (so GET /events serves it too) and POST it, "
                    "signed with --secret, to --app. Webhook and poller see the same event id.\n\n"
                    "The organization and directory are created in the stand-in when missing. Directory users\n"
                    "and groups get ids derived from the directory and the --email / --group name, so a later\n"
                    "dsync.user.updated for the same email targets the same user; fields not given are kept\n"
                    "from the last event about that user or group.",
        epilog="examples:\n"
               "  python -m local.workos send --app http://127.0.0.1:7071/api/webhooks/workos --secret S \\\n"
               "      dsync.user.created --organization org_demo --email ada@demo-dsync.example "
               "--first-name Ada --last-name Lovelace\n"
               "  python -m local.workos send --app ... --secret S dsync.user.updated --organization org_demo \\\n"
               "      --email ada@demo-dsync.example --state inactive\n"
               "  python -m local.workos send --app ... --secret S dsync.group.user_added --organization org_demo \\\n"
               "      --email ada@demo-dsync.example --group Coaches")
    send.add_argument("event_type", metavar="EVENT_TYPE", choices=SEND_EVENTS,
                      help="one of: " + ", ".join(SEND_EVENTS))
    send.add_argument("--app", help="the app's webhook URL, e.g. http://127.0.0.1:7071/api/webhooks/workos "
                                    "(without it the event only goes into the Events API)")
    send.add_argument("--secret", help="the webhook secret the app verifies WorkOS-Signature with")
    send.add_argument("--standin", default=f"http://127.0.0.1:{DEFAULT_PORT}",
                      help=f"the running stand-in's URL (default http://127.0.0.1:{DEFAULT_PORT})")
    send.add_argument("--api-key", default=DEFAULT_API_KEY, help=f"the stand-in's API key (default {DEFAULT_API_KEY})")
    send.add_argument("--organization", metavar="ORG", help="organization id, e.g. org_demo (created if missing)")
    send.add_argument("--organization-name", metavar="NAME", help="name for an organization created now")
    send.add_argument("--domain", action="append", default=[], metavar="DOMAIN",
                      help="domain for an organization created now (repeatable)")
    send.add_argument("--directory", metavar="DIR",
                      help="directory id (default: one derived from --organization; created if missing)")
    send.add_argument("--email", help="the directory user's email (dsync.user.* and dsync.group.user_*)")
    send.add_argument("--first-name", help="the user's first name")
    send.add_argument("--last-name", help="the user's last name")
    send.add_argument("--state", choices=USER_STATES,
                      help="the user's state (default: as last sent, else active); inactive = soft deprovision")
    send.add_argument("--role", metavar="SLUG", help="the user's role slug (default: as last sent, else none)")
    send.add_argument("--attr", action="append", default=[], type=_key_value, metavar="KEY=VALUE",
                      help="a custom attribute of the user (repeatable)")
    send.add_argument("--group", metavar="NAME", help="the directory group's name (dsync.group.*)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "serve":
        return _serve(args)
    try:
        return _send(args)
    except _SendFailed as error:
        print(f"send: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
