"""A local stand-in of Microsoft Entra ID's v2.0 endpoints, over HTTPS, enough for MSAL (1.39) to sign people in.

Serves each Entra tenant id (``tid``) that has a registered app or a user, on 127.0.0.1 with a certificate of the
local CA (msal refuses plain-http authorities); point ``ENTRA_AUTHORITY_HOST`` at ``base_url``.

What MSAL asks for, and what it gets:

- ``GET /{tid}/v2.0/.well-known/openid-configuration`` (tenant discovery, when a ``ConfidentialClientApplication``
  is built with ``instance_discovery=False``) -> the discovery document; MSAL reads ``authorization_endpoint``,
  ``token_endpoint`` and ``issuer``. An unknown tenant -> 400 ``invalid_tenant`` (AADSTS90002), which MSAL turns
  into a ValueError.
- ``GET /{tid}/oauth2/v2.0/authorize`` with ``client_id``, ``response_type=code``, ``redirect_uri``, ``scope``,
  ``state``, ``nonce`` (MSAL sends the SHA-256 hex of the nonce it keeps in the flow), ``code_challenge`` and
  ``code_challenge_method=S256``, ``client_info=1``, optional ``login_hint`` (plus ``X-AnchorMailbox``, ignored).
  An unknown tenant or app, or a redirect URI the app did not register, is an error page (400) as at Entra: a
  browser is never sent to an unverified address. Otherwise a small HTML page to pick one of the tenant's users or
  type one (email, names, roles, groups), and a deny button; the form posts back to the same path and answers 302
  to ``redirect_uri`` with ``code``, ``state``, ``session_state`` and ``client_info`` (when asked), or with
  ``error=access_denied&error_description=AADSTS65004...&state=...``. Only the query response mode is served.
- ``POST /{tid}/oauth2/v2.0/token``, ``grant_type=authorization_code``. MSAL posts ``client_id``, ``client_secret``
  (in the body, not HTTP Basic, though Basic is accepted too), ``code``, ``redirect_uri``, ``code_verifier``,
  ``scope``, ``client_info=1``. Checks: a registered app (else 400 ``unauthorized_client``, AADSTS700016), its
  secret (401 ``invalid_client``: AADSTS7000218 missing, AADSTS7000215 wrong), a code this stand-in issued to that
  app in that tenant (AADSTS70000), not redeemed before (AADSTS54005: a code is spent by its first redemption, right
  or wrong), younger than ``code_lifetime`` (AADSTS70008), the same redirect URI (AADSTS500112), and the PKCE
  verifier against the S256 (or plain) challenge (AADSTS50148) -- all ``invalid_grant``. Answers ``token_type``,
  ``scope``, ``expires_in``, ``ext_expires_in``, an opaque ``access_token``, a ``refresh_token`` when
  ``offline_access`` was asked, ``client_info`` (base64url ``{"uid": oid, "utid": tid}``, which MSAL's token cache
  uses for the account id) and, when ``openid`` was asked, an ``id_token``: RS256 with ``kid``, ``iss``
  ``{base}/{tid}/v2.0``, ``aud`` the client id, ``tid``, ``oid``, a pairwise ``sub``, ``email``,
  ``preferred_username``, ``name``, ``given_name``, ``family_name``, ``roles``, ``groups`` -- or, past 200 groups,
  Entra's overage form (``_claim_names``/``_claim_sources`` pointing at Graph, no ``groups``) --, the authorize
  request's ``nonce``, ``iat``/``nbf``/``exp``.
- ``POST /{tid}/oauth2/v2.0/token``, ``grant_type=client_credentials`` (an app's own token, e.g. a bot's token
  for the Bot Connector: MSAL's ``acquire_token_for_client``). MSAL posts ``client_id``, ``client_secret`` (or
  HTTP Basic), ``scope``, ``grant_type`` (and ``client_info=1``, ignored). Uses the same app registrations
  (``redirect_uris`` may be empty) and the same client checks as above: unknown app in that tenant -> 400
  ``unauthorized_client`` (AADSTS700016), missing secret -> 401 ``invalid_client`` (AADSTS7000218), wrong secret
  -> 401 ``invalid_client`` (AADSTS7000215). Then ``scope`` must be present (else 400 ``invalid_request``,
  AADSTS900144) and be exactly one ``<resource>/.default`` (else 400 ``invalid_scope``, AADSTS70011). Answers 200
  ``{"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599, "access_token"}`` (no refresh token, no
  ``scope``): a v1.0 access token, RS256 with the signing key (the JWKS ``kid``), claims ``aud`` the resource (the
  scope without ``/.default``, e.g. ``https://api.botframework.com``), ``iss`` ``https://sts.windows.net/{tid}/``,
  ``idp`` the same, ``appid`` and ``azp`` the client id, ``appidacr`` "1", ``idtyp`` "app", ``oid``/``sub`` (the
  app's service principal: derived from tenant and client id), ``tid``, ``iat``, ``nbf``, ``exp`` (iat + 3599),
  ``ver`` "1.0". ``token_grants(client_id)`` counts the successful client-credential grants of a client id (all
  tenants), so tests can assert that an app caches its token; ``mint_access_token`` makes such a token (also
  expired or badly signed) without a request.
- ``GET /{tid}/discovery/v2.0/keys`` -> the JWKS (one RSA key; Entra signs every tenant with the same keys).

Errors of the token endpoint and discovery are Entra's JSON: ``error``, ``error_description`` ("AADSTSnnnn: ...",
then trace id, correlation id and timestamp lines), ``error_codes``, ``timestamp``, ``trace_id``,
``correlation_id``, ``error_uri``. The AADSTS numbers are the ones Entra uses for these cases as far as known;
Microsoft says they change over time, so nothing should depend on them.

For tests and ``make dev``: ``register_app``, ``add_user``, and ``sign_in(authorization_url, email)``, which does
what a browser and the page do and returns the redirect's Location. Negative tests bend the ID token of one
sign-in with ``sign_in(..., claims={...})`` (replace claims; None removes one) and ``untrusted_key=True`` (signed
by a key the JWKS does not publish, under the published ``kid``); ``mint_id_token`` makes a token without a
sign-in. Another process registers apps and users with
``POST /_standin/apps`` {tenant_id, client_id, client_secret, redirect_uris} and ``POST /_standin/users``
{tenant_id, email, oid?, given_name?, family_name?, roles?, groups?}.

Command line: ``python -m local.entra serve --port 7082 --state-dir .local`` (the CA under ``<state>/ca``, the
signing key kept in ``<state>/entra-signing-key.pem`` so tokens and JWKS survive a restart).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import hmac
import html
import json
import secrets
import socket
import ssl
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote_plus, urlencode, urlsplit, urlunsplit

import httpx
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from local.serving import ServedOnAThread, serve_in_foreground, write_answer
from local.tls import LocalCA, local_ca, new_signing_key, signing_key_at

DEFAULT_PORT = 7082
CODE_LIFETIME_SECONDS = 600.0  # Entra's codes last about ten minutes
TOKEN_LIFETIME_SECONDS = 3600
APP_TOKEN_LIFETIME_SECONDS = 3599  # what Entra answers as expires_in for a client-credential token
DEFAULT_SCOPE_SUFFIX = "/.default"
GROUPS_CLAIM_LIMIT = 200  # past this many groups a JWT carries the overage claim instead
GRAPH_ORIGIN = "https://graph.microsoft.com"


class StandInError(Exception):
    """``sign_in`` met what a browser would show as an error page (unknown app, unregistered redirect URI...)."""


@dataclass
class _App:
    client_secret: str
    redirect_uris: set[str]


@dataclass
class _Grant:
    """An issued authorization code and what its redemption must match."""

    tenant_id: str
    client_id: str
    redirect_uri: str
    scopes: list[str]
    nonce: str | None
    code_challenge: str | None
    code_challenge_method: str | None
    user: dict[str, Any]
    session_id: str
    issued_at: float
    claims: dict[str, Any] = field(default_factory=dict)
    untrusted_key: bool = False
    redeemed: bool = False


@dataclass(frozen=True)
class _Answer:
    status: int
    body: bytes
    content_type: str = "application/json; charset=utf-8"
    headers: Mapping[str, str] = field(default_factory=dict)


class _EntraError(Exception):
    """An error Entra answers as JSON (token endpoint, discovery)."""

    def __init__(self, status: int, error: str, code: int, description: str) -> None:
        super().__init__(f"AADSTS{code}: {description}")
        self.status, self.error, self.code, self.description = status, error, code, description


class _PageError(Exception):
    """An error Entra shows the browser as a page instead of redirecting (the redirect URI is not trusted)."""

    def __init__(self, code: int, description: str) -> None:
        super().__init__(f"AADSTS{code}: {description}")
        self.code, self.description = code, description


class _RedirectError(Exception):
    """An authorize error sent back to the (verified) redirect URI."""

    def __init__(self, error: str, code: int, description: str) -> None:
        super().__init__(f"AADSTS{code}: {description}")
        self.error, self.code, self.description = error, code, description


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64url_int(value: int) -> str:
    return _b64url(value.to_bytes((value.bit_length() + 7) // 8, "big"))


def _timestamp(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%d %H:%M:%SZ")




def _split_list(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _single(query: Mapping[str, list[str]], name: str) -> str | None:
    values = query.get(name)
    return values[0] if values else None


def _with_query(uri: str, parameters: Mapping[str, str]) -> str:
    parts = urlsplit(uri)
    query = f"{parts.query}&{urlencode(parameters)}" if parts.query else urlencode(parameters)
    return urlunsplit(parts._replace(query=query))


class EntraStandIn(ServedOnAThread):
    """Entra ID's v2.0 sign-in endpoints on https://127.0.0.1; see the module docstring for what it answers."""

    thread_name = "Entra ID stand-in"
    scheme = "https"

    def __init__(self, ca: LocalCA, *, port: int = 0, code_lifetime: float = CODE_LIFETIME_SECONDS,
                 clock: Callable[[], float] = time.time, signing_key: rsa.RSAPrivateKey | None = None) -> None:
        self.ca = ca
        self.port = port
        self.code_lifetime = code_lifetime
        self.clock = clock  # tests move it to expire codes
        self.base_url = f"https://127.0.0.1:{port}" if port else ""
        self._signing_key = signing_key or new_signing_key()
        public_der = self._signing_key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        self.kid = _b64url(hashlib.sha256(public_der).digest())[:27]
        self._untrusted_key: rsa.RSAPrivateKey | None = None
        self._lock = threading.RLock()
        self._apps: dict[tuple[str, str], _App] = {}
        self._users: dict[str, dict[str, dict[str, Any]]] = {}  # tid -> lower-case email -> user
        self._grants: dict[str, _Grant] = {}
        self._client_grants: dict[str, int] = {}  # client id -> successful client-credential grants
        self._log_requests = False

    # lifecycle

    def _make_server(self) -> _Server:
        server = _Server(("127.0.0.1", self.port), _Handler)
        server.standin = self
        server.tls = self.ca.server_context("127.0.0.1", "localhost")
        return server

    # directory

    def register_app(self, tenant_id: str, client_id: str, client_secret: str, redirect_uris: Iterable[str]) -> None:
        """An app registration with one client secret (registering it again replaces both)."""
        with self._lock:
            self._apps[(tenant_id.lower(), client_id.lower())] = _App(client_secret, set(redirect_uris))
            self._users.setdefault(tenant_id.lower(), {})

    def add_user(self, tenant_id: str, email: str, *, oid: str | None = None, given_name: str | None = None,
                 family_name: str | None = None, roles: Sequence[str] = (), groups: Sequence[str] = ()) -> dict:
        """A user of the tenant (added again: replaced, keeping the oid unless one is given); returns a copy."""
        tid = tenant_id.lower()
        with self._lock:
            users = self._users.setdefault(tid, {})
            known = users.get(email.lower())
            user = {
                "tenant_id": tid,
                "oid": (oid or (known or {}).get("oid") or str(uuid.uuid4())).lower(),
                "email": email,
                "given_name": given_name,
                "family_name": family_name,
                "name": " ".join(part for part in (given_name, family_name) if part) or email,
                "roles": list(roles),
                "groups": list(groups),
            }
            users[email.lower()] = user
            return dict(user, roles=list(user["roles"]), groups=list(user["groups"]))

    def users(self, tenant_id: str) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(user) for user in self._users.get(tenant_id.lower(), {}).values()]

    # what a browser and the page do

    def sign_in(self, authorization_url: str, email: str, *, claims: Mapping[str, Any] | None = None,
                untrusted_key: bool = False, deny: bool = False) -> str:
        """Open the authorization URL as a browser would, pick (or type) ``email`` on the page, or deny; return
        the Location the stand-in redirects to (the callback URL with ``code`` and ``state``, or the error).

        ``claims`` replace claims of the ID token this sign-in's code redeems for (None removes a claim);
        ``untrusted_key`` signs it with a key the JWKS does not publish."""
        parts = urlsplit(authorization_url)
        tid = self._authorize_tenant(parts.path)
        if f"{parts.scheme}://{parts.netloc}" != self.base_url or tid is None:
            raise StandInError(f"{authorization_url} is not this stand-in's authorize endpoint ({self.base_url})")
        context = ssl.create_default_context(cafile=str(self.ca.cert_path))
        page = httpx.get(authorization_url, verify=context, timeout=10)
        if page.status_code != 200:
            raise StandInError(f"the authorize page answered {page.status_code}: {_page_text(page.text)}")
        params = {name: values[0] for name, values in parse_qs(parts.query, keep_blank_values=True).items()}
        if deny:
            return self._authorize(tid, params, None)
        with self._lock:
            user = self._users.get(tid, {}).get(email.lower())
        if user is None:  # typed on the page rather than picked: the page adds the user
            user = self.add_user(tid, email)
        return self._authorize(tid, params, user, claims=dict(claims or {}), untrusted_key=untrusted_key)

    # tokens

    def issuer(self, tenant_id: str) -> str:
        return f"{self.base_url}/{tenant_id.lower()}/v2.0"

    def jwks(self) -> dict[str, Any]:
        numbers = self._signing_key.public_key().public_numbers()
        return {"keys": [{
            "kty": "RSA", "use": "sig", "kid": self.kid, "n": _b64url_int(numbers.n), "e": _b64url_int(numbers.e),
            "issuer": f"{self.base_url}/{{tenantid}}/v2.0",
        }]}

    def mint_id_token(self, tenant_id: str, client_id: str, user: Mapping[str, Any], *, nonce: str | None = None,
                      claims: Mapping[str, Any] | None = None, untrusted_key: bool = False,
                      session_id: str | None = None) -> str:
        """An ID token as the token endpoint issues it (also for tests that need one without a sign-in)."""
        tid = tenant_id.lower()
        now = int(self.clock())
        body: dict[str, Any] = {
            "aud": client_id,
            "iss": self.issuer(tid),
            "iat": now,
            "nbf": now,
            "exp": now + TOKEN_LIFETIME_SECONDS,
            "aio": _b64url(secrets.token_bytes(24)),
            "name": user.get("name") or user["email"],
            "oid": user["oid"],
            "preferred_username": user["email"],
            "rh": _b64url(secrets.token_bytes(16)),
            # Entra's sub is pairwise: the same person has another sub in another app.
            "sub": _b64url(hashlib.sha256(f"{user['oid']}:{client_id}".encode()).digest())[:43],
            "tid": tid,
            "uti": _b64url(secrets.token_bytes(16)),
            "ver": "2.0",
        }
        for name in ("email", "given_name", "family_name"):
            if user.get(name):
                body[name] = user[name]
        if nonce is not None:
            body["nonce"] = nonce
        if session_id is not None:
            body["sid"] = session_id
        if user.get("roles"):
            body["roles"] = list(user["roles"])
        groups = list(user.get("groups") or ())
        if len(groups) > GROUPS_CLAIM_LIMIT:
            body["_claim_names"] = {"groups": "src1"}
            body["_claim_sources"] = {"src1": {"endpoint": f"{GRAPH_ORIGIN}/v1.0/users/{user['oid']}/getMemberObjects"}}
        elif groups:
            body["groups"] = groups
        for name, value in (claims or {}).items():
            if value is None:
                body.pop(name, None)
            else:
                body[name] = value
        key = self._untrusted() if untrusted_key else self._signing_key
        return jwt.encode(body, key, algorithm="RS256", headers={"kid": self.kid, "typ": "JWT"})

    def mint_access_token(self, tenant_id: str, client_id: str, audience: str, *,
                          lifetime: int = APP_TOKEN_LIFETIME_SECONDS, claims: Mapping[str, Any] | None = None,
                          untrusted_key: bool = False) -> str:
        """An app-only v1.0 access token as the client credentials grant issues it, for ``audience`` (the
        resource, without ``/.default``); a negative ``lifetime`` makes an expired one. ``claims`` replace
        claims (None removes one); ``untrusted_key`` signs with a key the JWKS does not publish."""
        tid, client = tenant_id.lower(), client_id.lower()
        now = int(self.clock())
        issuer = f"https://sts.windows.net/{tid}/"
        principal = str(uuid.uuid5(uuid.NAMESPACE_URL, f"entra-stand-in:service-principal:{tid}:{client}"))
        body: dict[str, Any] = {
            "aud": audience,
            "iss": issuer,
            "iat": now,
            "nbf": now,
            "exp": now + lifetime,
            "aio": _b64url(secrets.token_bytes(24)),
            "appid": client,
            "appidacr": "1",
            "azp": client,
            "idp": issuer,
            "idtyp": "app",
            "oid": principal,
            "rh": _b64url(secrets.token_bytes(16)),
            "sub": principal,
            "tid": tid,
            "uti": _b64url(secrets.token_bytes(16)),
            "ver": "1.0",
        }
        for name, value in (claims or {}).items():
            if value is None:
                body.pop(name, None)
            else:
                body[name] = value
        key = self._untrusted() if untrusted_key else self._signing_key
        return jwt.encode(body, key, algorithm="RS256", headers={"kid": self.kid, "typ": "JWT"})

    def token_grants(self, client_id: str) -> int:
        """How many client-credential tokens the token endpoint issued to ``client_id`` (in any tenant)."""
        with self._lock:
            return self._client_grants.get(client_id.lower(), 0)

    def _untrusted(self) -> rsa.RSAPrivateKey:
        with self._lock:
            if self._untrusted_key is None:
                self._untrusted_key = new_signing_key()
            return self._untrusted_key

    # request handling

    def _known_tenant(self, tid: str) -> bool:
        with self._lock:
            return tid in self._users

    @staticmethod
    def _authorize_tenant(path: str) -> str | None:
        segments = path.strip("/").split("/")
        if len(segments) == 4 and segments[1:] == ["oauth2", "v2.0", "authorize"]:
            return segments[0].lower()
        return None

    def _handle(self, method: str, target: str, headers: Mapping[str, str], body: bytes) -> _Answer:
        parts = urlsplit(target)
        query = parse_qs(parts.query, keep_blank_values=True)
        segments = parts.path.strip("/").split("/")
        try:
            if segments[0] == "_standin":
                return self._control(method, segments[1:], body)
            tid, route = segments[0].lower(), "/".join(segments[1:])
            if route == "v2.0/.well-known/openid-configuration" and method == "GET":
                return self._discovery(tid)
            if route == "discovery/v2.0/keys" and method == "GET":
                return _json_answer(200, self.jwks())
            if route == "oauth2/v2.0/authorize" and method in ("GET", "POST"):
                form = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True) if method == "POST" else {}
                return self._authorize_endpoint(tid, query if method == "GET" else form, method)
            if route == "oauth2/v2.0/token":
                if method != "POST":
                    raise _EntraError(400, "invalid_request", 900561,
                                      f"The endpoint only accepts POST requests. Received a {method} request.")
                return self._token(tid, headers, body)
        except _EntraError as error:
            return self._error_answer(error)
        return _Answer(404, b"Not Found", "text/plain; charset=utf-8")

    def _error_answer(self, error: _EntraError) -> _Answer:
        now = self.clock()
        trace_id, correlation_id = str(uuid.uuid4()), str(uuid.uuid4())
        description = (f"AADSTS{error.code}: {error.description}\r\nTrace ID: {trace_id}\r\n"
                       f"Correlation ID: {correlation_id}\r\nTimestamp: {_timestamp(now)}")
        return _json_answer(error.status, {
            "error": error.error, "error_description": description, "error_codes": [error.code],
            "timestamp": _timestamp(now), "trace_id": trace_id, "correlation_id": correlation_id,
            "error_uri": f"{self.base_url}/error?code={error.code}",
        })

    def _discovery(self, tid: str) -> _Answer:
        if not self._known_tenant(tid):
            raise _EntraError(400, "invalid_tenant", 90002, f"Tenant '{tid}' not found. Check to make sure you have "
                              "the correct tenant ID and are signing into the correct cloud.")
        base = f"{self.base_url}/{tid}"
        return _json_answer(200, {
            "token_endpoint": f"{base}/oauth2/v2.0/token",
            "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
            "jwks_uri": f"{base}/discovery/v2.0/keys",
            "response_modes_supported": ["query"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["code"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "issuer": self.issuer(tid),
            "request_uri_parameter_supported": False,
            "userinfo_endpoint": f"{GRAPH_ORIGIN}/oidc/userinfo",
            "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
            "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
            "http_logout_supported": True,
            "frontchannel_logout_supported": True,
            "end_session_endpoint": f"{base}/oauth2/v2.0/logout",
            "claims_supported": ["sub", "iss", "aud", "exp", "iat", "auth_time", "acr", "nonce", "preferred_username",
                                 "name", "tid", "ver", "at_hash", "c_hash", "email"],
            "code_challenge_methods_supported": ["S256", "plain"],
            "tenant_region_scope": "EU",
            "cloud_instance_name": "microsoftonline.com",
            "msgraph_host": "graph.microsoft.com",
        })

    def _checked_app(self, tid: str, params: Mapping[str, str]) -> str:
        """The redirect URI of a valid authorize request; raises _PageError where Entra shows an error page."""
        if not self._known_tenant(tid):
            raise _PageError(90002, f"Tenant '{tid}' not found.")
        client_id = (params.get("client_id") or "").lower()
        with self._lock:
            app = self._apps.get((tid, client_id))
        if app is None:
            raise _PageError(700016, f"Application with identifier '{client_id}' was not found in the directory "
                             f"'{tid}'.")
        redirect_uri = params.get("redirect_uri") or ""
        if redirect_uri not in app.redirect_uris:
            raise _PageError(50011, f"The redirect URI '{redirect_uri}' specified in the request does not match the "
                             f"redirect URIs configured for the application '{client_id}'.")
        return redirect_uri

    @staticmethod
    def _check_request(params: Mapping[str, str]) -> None:
        if params.get("response_type") != "code":
            raise _RedirectError("unsupported_response_type", 9002313, "Invalid request. This stand-in serves "
                                 f"response_type=code only, not '{params.get('response_type')}'.")
        if params.get("response_mode") not in (None, "", "query"):
            raise _RedirectError("invalid_request", 9002313, "Invalid request. This stand-in answers with "
                                 "response_mode=query only.")
        method = params.get("code_challenge_method")
        if params.get("code_challenge") and method not in (None, "S256", "plain"):
            raise _RedirectError("invalid_request", 9002313, f"Invalid request. Unknown code_challenge_method "
                                 f"'{method}'.")

    def _authorize_endpoint(self, tid: str, values: Mapping[str, list[str]], method: str) -> _Answer:
        params = {name: items[0] for name, items in values.items() if not name.startswith("_")}
        try:
            redirect_uri = self._checked_app(tid, params)
        except _PageError as error:
            return _html_answer(400, _error_page(error))
        if method == "GET":
            try:
                self._check_request(params)
            except _RedirectError as error:
                return _redirect_answer(self._error_location(redirect_uri, params, error))
            with self._lock:
                users = [dict(user) for user in self._users.get(tid, {}).values()]
            return _html_answer(200, _sign_in_page(tid, params, users))
        action = _single(values, "_action") or ""
        if action == "deny":
            return _redirect_answer(self._authorize(tid, params, None))
        if action.startswith("user:"):
            with self._lock:
                user = self._users.get(tid, {}).get(action[5:].lower())
            if user is None:
                return _html_answer(400, "<p>That user is no longer in the tenant.</p>")
        else:
            email = (_single(values, "_email") or "").strip()
            if "@" not in email:
                return _html_answer(400, "<p>Type an email address, or pick a user.</p>")
            user = self.add_user(tid, email, given_name=_single(values, "_given_name") or None,
                                 family_name=_single(values, "_family_name") or None,
                                 roles=_split_list(_single(values, "_roles") or ""),
                                 groups=_split_list(_single(values, "_groups") or ""))
        return _redirect_answer(self._authorize(tid, params, user))

    def _error_location(self, redirect_uri: str, params: Mapping[str, str], error: _RedirectError) -> str:
        answer = {"error": error.error, "error_description": f"AADSTS{error.code}: {error.description}"}
        if params.get("state"):
            answer["state"] = params["state"]
        return _with_query(redirect_uri, answer)

    def _authorize(self, tid: str, params: Mapping[str, str], user: Mapping[str, Any] | None, *,
                   claims: dict[str, Any] | None = None, untrusted_key: bool = False) -> str:
        """The Location of the answer to an authorize request, for ``user`` or (None) a denial."""
        try:
            redirect_uri = self._checked_app(tid, params)
        except _PageError as error:
            raise StandInError(str(error)) from None
        try:
            self._check_request(params)
            if user is None:
                raise _RedirectError("access_denied", 65004, "User declined to consent to access the app.")
        except _RedirectError as error:
            return self._error_location(redirect_uri, params, error)
        code = _b64url(secrets.token_bytes(48))
        session_id = str(uuid.uuid4())
        grant = _Grant(
            tenant_id=tid, client_id=params["client_id"].lower(), redirect_uri=redirect_uri,
            scopes=(params.get("scope") or "").split(), nonce=params.get("nonce"),
            code_challenge=params.get("code_challenge") or None,
            code_challenge_method=params.get("code_challenge_method") or None,
            user=dict(user), session_id=session_id, issued_at=self.clock(), claims=dict(claims or {}),
            untrusted_key=untrusted_key)
        with self._lock:
            self._forget_old_grants()
            self._grants[code] = grant
        answer = {"code": code}
        if params.get("client_info") == "1":
            answer["client_info"] = _client_info(user["oid"], tid)
        if params.get("state"):
            answer["state"] = params["state"]
        answer["session_state"] = session_id
        return _with_query(redirect_uri, answer)

    def _forget_old_grants(self) -> None:
        horizon = self.clock() - 2 * self.code_lifetime
        for code in [code for code, grant in self._grants.items() if grant.issued_at < horizon]:
            del self._grants[code]

    def _token(self, tid: str, headers: Mapping[str, str], body: bytes) -> _Answer:
        form = {name: values[0] for name, values in parse_qs(body.decode("utf-8", "replace")).items()}
        if not self._known_tenant(tid):
            raise _EntraError(400, "invalid_tenant", 90002, f"Tenant '{tid}' not found.")
        grant_type = form.get("grant_type")
        if not grant_type:
            raise _EntraError(400, "invalid_request", 900144,
                              "The request body must contain the following parameter: 'grant_type'.")
        if grant_type not in ("authorization_code", "client_credentials"):
            raise _EntraError(400, "unsupported_grant_type", 70003,
                              f"The app requested an unsupported grant type '{grant_type}'.")
        client_id = self._authenticated_client(tid, headers, form)
        if grant_type == "client_credentials":
            return self._client_credentials_grant(tid, client_id, form)
        code = form.get("code")
        if not code:
            raise _EntraError(400, "invalid_request", 900144,
                              "The request body must contain the following parameter: 'code'.")
        grant = self._redeem(tid, client_id, code)
        if form.get("redirect_uri") != grant.redirect_uri:
            raise _EntraError(400, "invalid_grant", 500112, "The reply address does not match the reply address "
                              "provided when requesting the authorization code.")
        if grant.code_challenge and not _pkce_matches(grant, form.get("code_verifier") or ""):
            raise _EntraError(400, "invalid_grant", 50148, "The code_verifier does not match the code_challenge "
                              "supplied in the authorization request for PKCE.")
        return self._token_answer(tid, client_id, grant, form)

    def _authenticated_client(self, tid: str, headers: Mapping[str, str], form: Mapping[str, str]) -> str:
        """The (lower-case) client id of a registered app of the tenant whose secret was presented."""
        client_id, client_secret = self._client_credentials(headers, form)
        with self._lock:
            app = self._apps.get((tid, client_id))
        if app is None:
            raise _EntraError(400, "unauthorized_client", 700016,
                              f"Application with identifier '{client_id}' was not found in the directory '{tid}'.")
        if not client_secret:
            raise _EntraError(401, "invalid_client", 7000218,
                              "The request body must contain the following parameter: 'client_assertion' or "
                              "'client_secret'.")
        if not hmac.compare_digest(client_secret.encode(), app.client_secret.encode()):
            raise _EntraError(401, "invalid_client", 7000215,
                              f"Invalid client secret provided for the app '{client_id}'.")
        return client_id

    def _client_credentials_grant(self, tid: str, client_id: str, form: Mapping[str, str]) -> _Answer:
        scope = (form.get("scope") or "").strip()
        if not scope:
            raise _EntraError(400, "invalid_request", 900144,
                              "The request body must contain the following parameter: 'scope'.")
        scopes = scope.split()
        resource = scopes[0].removesuffix(DEFAULT_SCOPE_SUFFIX)
        if len(scopes) != 1 or not scopes[0].endswith(DEFAULT_SCOPE_SUFFIX) or not resource:
            raise _EntraError(400, "invalid_scope", 70011,
                              f"The provided request must include a 'scope' input parameter. The provided value for "
                              f"the input parameter 'scope' is not valid. The scope {scope} is not valid. Client "
                              f"credential flows must have a scope value with /.default suffixed to the resource "
                              f"identifier (application ID URI).")
        token = self.mint_access_token(tid, client_id, resource)
        with self._lock:
            self._client_grants[client_id] = self._client_grants.get(client_id, 0) + 1
        return _json_answer(200, {
            "token_type": "Bearer",
            "expires_in": APP_TOKEN_LIFETIME_SECONDS,
            "ext_expires_in": APP_TOKEN_LIFETIME_SECONDS,
            "access_token": token,
        }, {"Cache-Control": "no-store", "Pragma": "no-cache"})

    @staticmethod
    def _client_credentials(headers: Mapping[str, str], form: Mapping[str, str]) -> tuple[str, str | None]:
        authorization = headers.get("Authorization") or ""
        if authorization.lower().startswith("basic "):
            try:
                decoded = base64.b64decode(authorization[6:].strip()).decode("utf-8")
            except ValueError:
                raise _EntraError(401, "invalid_client", 7000215, "Malformed HTTP Basic credentials.") from None
            user, _, password = decoded.partition(":")
            return unquote_plus(user).lower(), unquote_plus(password)
        client_id = form.get("client_id")
        if not client_id:
            raise _EntraError(400, "invalid_request", 900144,
                              "The request body must contain the following parameter: 'client_id'.")
        return client_id.lower(), form.get("client_secret")

    def _redeem(self, tid: str, client_id: str, code: str) -> _Grant:
        with self._lock:
            grant = self._grants.get(code)
            if grant is None or grant.tenant_id != tid or grant.client_id != client_id:
                raise _EntraError(400, "invalid_grant", 70000, "The provided value for the 'code' parameter is not "
                                  "valid.")
            if grant.redeemed:
                raise _EntraError(400, "invalid_grant", 54005, "OAuth2 Authorization code was already redeemed, "
                                  "please retry with a new valid code.")
            grant.redeemed = True  # spent by its first redemption, whatever comes of it
            if self.clock() - grant.issued_at > self.code_lifetime:
                raise _EntraError(400, "invalid_grant", 70008, "The provided authorization code has expired. Send "
                                  "a new interactive authorization request for this user.")
            return grant

    def _token_answer(self, tid: str, client_id: str, grant: _Grant, form: Mapping[str, str]) -> _Answer:
        granted = [scope for scope in grant.scopes if scope != "offline_access"] or ["openid"]
        answer: dict[str, Any] = {
            "token_type": "Bearer",
            "scope": " ".join(granted),
            "expires_in": TOKEN_LIFETIME_SECONDS - 1,
            "ext_expires_in": TOKEN_LIFETIME_SECONDS - 1,
            "access_token": _b64url(secrets.token_bytes(48)),
        }
        if "offline_access" in grant.scopes:
            answer["refresh_token"] = _b64url(secrets.token_bytes(64))
        if "openid" in grant.scopes:
            answer["id_token"] = self.mint_id_token(
                tid, client_id, grant.user, nonce=grant.nonce, claims=grant.claims,
                untrusted_key=grant.untrusted_key, session_id=grant.session_id)
        if form.get("client_info") == "1":
            answer["client_info"] = _client_info(grant.user["oid"], tid)
        return _json_answer(200, answer, {"Cache-Control": "no-store", "Pragma": "no-cache"})

    # control endpoints, for a stand-in in another process

    def _control(self, method: str, path: list[str], body: bytes) -> _Answer:
        try:
            document = json.loads(body or b"{}")
        except ValueError:
            return _json_answer(400, {"error": "the body is not JSON"})
        if not isinstance(document, dict):
            return _json_answer(400, {"error": "the body must be a JSON object"})
        try:
            if method == "POST" and path == ["apps"]:
                self.register_app(document["tenant_id"], document["client_id"], document["client_secret"],
                                  list(document.get("redirect_uris") or ()))
                return _json_answer(201, {"tenant_id": document["tenant_id"].lower(),
                                          "client_id": document["client_id"].lower()})
            if method == "POST" and path == ["users"]:
                user = self.add_user(document["tenant_id"], document["email"], oid=document.get("oid"),
                                     given_name=document.get("given_name"), family_name=document.get("family_name"),
                                     roles=list(document.get("roles") or ()), groups=list(document.get("groups") or ()))
                return _json_answer(201, user)
        except (KeyError, AttributeError, TypeError) as error:
            return _json_answer(400, {"error": f"missing or malformed field: {error}"})
        return _json_answer(404, {"error": "not_found"})


def _pkce_matches(grant: _Grant, verifier: str) -> bool:
    if grant.code_challenge_method == "plain":
        expected = verifier
    else:
        expected = _b64url(hashlib.sha256(verifier.encode("ascii", "replace")).digest())
    return hmac.compare_digest(expected.encode(), (grant.code_challenge or "").encode())


def _client_info(oid: str, tid: str) -> str:
    return _b64url(json.dumps({"uid": oid, "utid": tid}).encode())


def _json_answer(status: int, payload: Any, headers: Mapping[str, str] | None = None) -> _Answer:
    return _Answer(status, json.dumps(payload).encode(), headers=dict(headers or {}))


def _html_answer(status: int, content: str) -> _Answer:
    return _Answer(status, content.encode(), "text/html; charset=utf-8")


def _redirect_answer(location: str) -> _Answer:
    return _Answer(302, b"", "text/plain; charset=utf-8", {"Location": location})


def _page_text(text: str) -> str:
    """The error line of an error page, for StandInError."""
    start = text.find("AADSTS")
    return html.unescape(text[start:text.find("<", start)]) if start >= 0 else text[:200]


_PAGE_STYLE = ("body{font-family:system-ui,sans-serif;max-width:36rem;margin:3rem auto;color:#1b1b1b}"
               "button{margin:.2rem 0;padding:.4rem .8rem}label{display:block;margin:.4rem 0}"
               "input{width:100%;padding:.3rem}fieldset{margin:1rem 0}")


def _error_page(error: _PageError) -> str:
    return (f"<!doctype html><html><head><meta charset=utf-8><title>Sign in</title><style>{_PAGE_STYLE}</style>"
            f"</head><body><h1>Sorry, but we're having trouble signing you in.</h1>"
            f"<p>AADSTS{error.code}: {html.escape(error.description)}</p></body></html>")


def _user_button(user: Mapping[str, Any]) -> str:
    label = f"{user['name']} <{user['email']}>"
    if user["roles"]:
        label += f" — roles: {', '.join(user['roles'])}"
    if user["groups"]:
        label += f" — {len(user['groups'])} groups"
    return f'<button name=_action value="user:{html.escape(user["email"])}">{html.escape(label)}</button><br>'


def _sign_in_page(tid: str, params: Mapping[str, str], users: list[dict[str, Any]]) -> str:
    escape = html.escape
    hidden = "".join(f'<input type=hidden name="{escape(name)}" value="{escape(value)}">'
                     for name, value in params.items())
    picks = "".join(_user_button(user) for user in sorted(users, key=lambda user: user["email"].lower()))
    hint = escape(params.get("login_hint") or "")
    return (
        f"<!doctype html><html><head><meta charset=utf-8><title>Sign in to your account</title>"
        f"<style>{_PAGE_STYLE}</style></head><body><h1>Sign in</h1>"
        f"<p>Entra ID stand-in, tenant <code>{escape(tid)}</code>, app <code>{escape(params.get('client_id', ''))}"
        f"</code></p><form method=post>{hidden}"
        f"<fieldset><legend>Pick an account</legend>{picks or '<p>No users yet: type one below.</p>'}</fieldset>"
        f"<fieldset><legend>Or type one</legend>"
        f"<label>Email <input name=_email type=email value=\"{hint}\"></label>"
        f"<label>Given name <input name=_given_name></label><label>Family name <input name=_family_name></label>"
        f"<label>App roles (comma-separated) <input name=_roles></label>"
        f"<label>Groups (comma-separated ids) <input name=_groups></label>"
        f"<button name=_action value=custom>Sign in</button></fieldset>"
        f"<button name=_action value=deny>Deny (cancel the sign-in)</button></form></body></html>")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    standin: EntraStandIn
    tls: ssl.SSLContext

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()

    def get_request(self) -> tuple[socket.socket, Any]:
        # The TLS handshake happens on the connection's own thread (first read), so a slow or failing client
        # never holds up the accept loop.
        connection, address = self.socket.accept()
        wrapped = self.tls.wrap_socket(connection, server_side=True, do_handshake_on_connect=False)
        with self._connections_lock:
            self._connections.add(wrapped)
        return wrapped, address

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """End kept-alive connections, whose threads would otherwise wait for their clients."""
        with self._connections_lock:
            connections, self._connections = list(self._connections), set()
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        error = sys.exc_info()[1]
        if isinstance(error, (ssl.SSLError, ConnectionError, TimeoutError)):
            return  # a client that went away or did not trust the CA: not the stand-in's bug
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"  # keep-alive, as requests' pooled session expects
    # Headers and body go out as two writes: without TCP_NODELAY, Nagle holds the body back until the
    # client's delayed ACK (40 ms) on a kept-alive connection.
    disable_nagle_algorithm = True
    timeout = 30  # idle keep-alive connections end instead of holding a thread

    def _dispatch(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        try:
            answer = self.server.standin._handle(self.command, self.path, self.headers, body)
        except Exception:  # a bug of the stand-in: answer as Entra would and keep serving
            import traceback

            traceback.print_exc()
            answer = _json_answer(500, {"error": "server_error", "error_description": "stand-in failure"})
        write_answer(self, answer.status, answer.content_type, answer.body,
                     {"x-ms-request-id": str(uuid.uuid4()), **answer.headers})

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _dispatch

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.standin._log_requests:
            sys.stderr.write(f"entra stand-in: {format % args}\n")


# --- command line ------------------------------------------------------------------------------------------




def _serve(args: argparse.Namespace) -> int:
    state: Path = args.state_dir.resolve()
    state.mkdir(parents=True, exist_ok=True)
    standin = EntraStandIn(local_ca(state / "ca"), port=args.port,
                           signing_key=signing_key_at(state / "entra-signing-key.pem"))
    standin._log_requests = args.verbose
    for spec in args.app:
        tid, client_id, secret, *redirect_uris = spec.split(",")
        standin.register_app(tid, client_id, secret, redirect_uris)
    return serve_in_foreground(standin, args.port,
                               f"Entra ID stand-in on {{base_url}} (CA: {standin.ca.cert_path}); Ctrl-C stops it")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m local.entra", description="Local stand-in of Entra ID sign-in")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve the stand-in until Ctrl-C")
    serve.add_argument("--port", type=int, default=DEFAULT_PORT)
    serve.add_argument("--state-dir", type=Path, default=Path(".local"),
                       help="where the local CA and the signing key are kept (default .local)")
    serve.add_argument("--app", action="append", default=[], metavar="TID,CLIENT_ID,SECRET[,REDIRECT_URI,...]",
                       help="register an app at start (repeatable; a bot app has no redirect URI); "
                            "POST /_standin/apps does it later")
    serve.add_argument("--verbose", action="store_true", help="log every request to stderr")
    serve.set_defaults(run=_serve)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
