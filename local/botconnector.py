"""A local stand-in of the Bot Framework channel side of Microsoft Teams: what signs and sends activities to the bot,
and the Bot Connector REST API the bot answers through. Plain http on 127.0.0.1 (the connector SDK takes any service
URL; only the bot's own Entra token endpoint needs HTTPS, see local/entra.py).

Channel -> bot authentication (what the bot validates; point the bot's
``TO_BOT_FROM_CHANNEL_OPENID_METADATA_URL`` at ``openid_metadata_url``):

- ``GET /v1/.well-known/openidconfiguration`` -> ``{"issuer": "https://api.botframework.com",
  "authorization_endpoint": "https://invalid.botframework.com", "jwks_uri": "<base>/v1/.well-known/keys",
  "id_token_signing_alg_values_supported": ["RS256"], "token_endpoint_auth_methods_supported": ["private_key_jwt"]}``.
- ``GET /v1/.well-known/keys`` -> ``{"keys": [...]}``: RSA JWKs (``kty, use: "sig", kid, x5t, n, e, endorsements``).
  The main key is endorsed for ``["msteams", "webchat", "emulator"]``; a second key, ``kid="webchat-only"``, only
  for ``["webchat"]`` (a token it signs is refused for an msteams activity: "channel not endorsed").
  ``metadata_requests`` and ``keys_requests`` count the requests to these two; ``rotate_keys()`` replaces the main
  key (a new kid; the old one leaves the JWKS; ``main_kid`` is the current one). botbuilder keeps a fetched JWKS
  for a day and fails on a kid it does not know (IndexError) without refetching: rotation tests must clear its
  ``JwtTokenExtractor.metadataCache``.
- ``channel_token(...)`` signs a token as the channel does: header ``{alg: RS256, typ: JWT, kid, x5t}``, claims
  ``iss`` (https://api.botframework.com), ``aud`` (the bot's app id), ``serviceurl``, ``nbf``, ``iat``, ``exp``.
  ``sign_with`` picks the key for forged-token probes: "main", "webchat-only", "untrusted" (a key the JWKS does not
  publish, under the main kid: a bad signature) or "unknown-kid" (a key and kid the JWKS does not publish).
  ``send_to_bot(activity)`` POSTs an activity to ``bot_endpoint`` (the bot's ``/api/messages``) with such a token.

Teams' side, in memory: ``add_user`` (the same email in the same tenant is the same user; the aadObjectId and the
"29:" id are derived from app, tenant and email, so another process derives the same; ``user(tenant, aad id)`` and
``find_user(tenant, email)`` look them up), ``install`` / ``uninstall``
(personal scope: installing creates the user's 1:1 conversation, whose id -- ``a:1...``, derived from app, tenant
and user, so reinstalling gives it back -- contains ':', which clients percent-encode in URLs), ``conversation_of``.
Activities Teams would send: ``message_activity``, ``installation_update_activity`` (action "add" installs,
"remove" uninstalls: the change the event reports), ``conversation_update_activity`` (membersAdded: the bot).

Bot Connector REST, each path also under a region prefix (``/amer/v3/...``: ``service_url`` carries one, as Teams'
do); ids in paths are percent-decoded; JSON bodies in Bot Framework's camelCase:

- ``POST /v3/conversations``: ConversationParameters ``{"isGroup": false, "bot", "members": [{"id": aadObjectId or
  29: id}], "tenantId"?, "channelData": {"tenant": {"id"}}, "activity"?}``. No tenant (neither channelData nor
  tenantId) -> 400 ``BadArgument`` "Could not parse tenant id"; a group or not exactly one member -> 400
  ``BadArgument``; member unknown in the tenant -> 404 ``NotFound`` "User not found"; the app not installed for
  them -> 403 ``Forbidden`` "The bot is not part of the conversation roster."; else 201 ``{"id": <the personal
  conversation id>, "activityId": <id of "activity" when one was sent, else null>, "serviceUrl"}`` (again: the
  same id).
- ``POST /v3/conversations/{id}/activities`` and ``.../activities/{replyToId}``: the body must be a JSON object with
  a string ``type`` (else 400 ``BadArgument``); unknown conversation -> 404 ``ConversationNotFound``; uninstalled ->
  403 ``BotNotInConversationRoster``. The activity is recorded (with a new ``id``, ``replyToId`` from the path,
  ``timestamp``, ``from`` the bot ``{"id": "28:<app id>", "name": "Coach"}``, ``conversation``, and the log's
  ``seq``) -> 201 ``{"id"}``. Typing activities are recorded too.
- ``PUT /v3/conversations/{id}/activities/{activityId}`` -> 200 ``{"id"}``, recorded as a new log entry with the
  same ``id`` and ``"updated": true``; ``DELETE`` -> 200 ``{}``, recorded as ``{"type": "messageDelete", "id",
  "deleted": true}``. An id the bot never sent (or deleted) in that conversation -> 404 ``NotFound``.
- ``GET /v3/conversations/{id}/members/{memberId}`` (the 29: id or the aadObjectId) -> 200 TeamsChannelAccount
  ``{"id", "name", "aadObjectId", "email", "userPrincipalName", "tenantId", "userRole": "user", "givenName"?,
  "surname"?}``; a member not in that conversation -> 404 ``MemberNotFoundInConversation``.
- Errors are ``{"error": {"code", "message"}}`` (what botbuilder's ErrorResponse parses). Every REST call needs
  ``Authorization: Bearer <jwt>`` with ``aud`` https://api.botframework.com and ``appid`` or ``azp`` the app id; with
  ``token_jwks`` (the Entra stand-in's ``jwks``) also an RS256 signature by one of its keys and an unexpired
  ``exp`` (5 minutes' skew, as Microsoft's validators allow); without it the claims are read unverified. Else 401
  ``{"message": "Authorization has been denied for this request."}``.
- Faults, after authentication: ``fail_next(status, count=, retry_after=, path_contains=)`` answers the next
  ``count`` REST calls (whose raw or decoded path contains ``path_contains``) with ``status`` and
  ``{"error": {"code": "TooManyRequests" (429) / "ServiceUnavailable" (503) / ... (the status phrase), "message"}}``
  plus ``Retry-After`` when given (a fractional value is sent as is: not standard HTTP, but it keeps tests fast).
  ``limit_rate(per_second)`` is a token bucket (burst: max(1, rate)) over all REST calls of the app: beyond it,
  429 ``TooManyRequests`` with ``Retry-After: 1``. A refused call delivers nothing (``requests_log`` lists it);
  ``clear_faults()`` forgets pending faults and the rate limit.
- Observability: ``activities(conversation_id, after=, include_typing=)`` (the log, in order, each entry with its
  ``seq``), ``sent_count(conversation_id=None, include_typing=True)`` (sends and replies), ``requests_log``
  ((method, raw path, status) of every REST call).

Control endpoints for a client in another process (no auth, never faulted or rate limited):
``POST /_standin/users`` {tenant_id, email, name?, aad_object_id?, user_principal_name?} -> add_user + install, 201
{tenant_id, aad_object_id, id, conversation_id, name, email, user_principal_name};
``POST /_standin/send`` {tenant_id, email, text} or {tenant_id, email, type: "installationUpdate", action?} or
{..., type: "conversationUpdate"} (an unknown email is added first) -> builds the activity and sends it to the bot,
200 {status: <the bot's HTTP status>, activity_id, conversation_id, body: <the bot's answer, JSON or text>} (409
without a bot endpoint, 502 when the bot cannot be reached);
``GET /_standin/conversations/{id}/activities?after=N&include_typing=false`` -> {activities} (404 unknown id);
``POST /_standin/fail`` {status, count?, retry_after?, path_contains?} (``DELETE /_standin/fail``: ``clear_faults``,
which also lifts the rate limit); ``POST /_standin/rate`` {per_second: x|null};
``POST /_standin/bot`` {bot_endpoint}; ``GET /_standin/requests`` -> {requests: [[method, path, status], ...]}.

Command line: ``python -m local.botconnector serve --port 7083 --app-id ID --bot-endpoint URL`` (``--token-jwks-url``
and ``--ca-file`` to verify the bot's tokens against a running Entra stand-in; ``--state-dir`` keeps the main
signing key, so a bot that cached the JWKS keeps accepting tokens after a restart).
"""

from __future__ import annotations

import argparse
import base64
import copy
import hashlib
import json
import math
import secrets
import ssl
import sys
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import httpx
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from local.serving import ServedOnAThread, serve_in_foreground, write_answer
from local.tls import new_signing_key, signing_key_at

DEFAULT_PORT = 7083
ISSUER = "https://api.botframework.com"
CONNECTOR_AUDIENCE = "https://api.botframework.com"  # the aud of the bot's own tokens (scope without /.default)
MAIN_ENDORSEMENTS = ("msteams", "webchat", "emulator")
WEBCHAT_ONLY_KID = "webchat-only"
SIGN_WITH = ("main", "webchat-only", "untrusted", "unknown-kid")
BOT_NAME = "Coach"
CLOCK_SKEW_SECONDS = 300
DENIED = {"message": "Authorization has been denied for this request."}
NOT_IN_ROSTER = "The bot is not part of the conversation roster."
_NAMESPACE = uuid.UUID("6f1c8f0e-5d0e-4a53-9a43-7b2f3f0c1a11")  # of the ids this stand-in derives


@dataclass(frozen=True)
class TeamsUser:
    """A Teams user of a tenant, as the channel knows them."""

    tenant_id: str
    aad_object_id: str
    id: str  # "29:..." (the channel's id of the user for this bot)
    name: str
    email: str
    upn: str

    @property
    def given_name(self) -> str | None:
        parts = self.name.split()
        return parts[0] if len(parts) > 1 else None

    @property
    def surname(self) -> str | None:
        parts = self.name.split()
        return " ".join(parts[1:]) if len(parts) > 1 else None


@dataclass
class _Key:
    private: rsa.RSAPrivateKey
    kid: str
    endorsements: tuple[str, ...]

    def jwk(self) -> dict[str, Any]:
        numbers = self.private.public_key().public_numbers()
        return {"kty": "RSA", "use": "sig", "kid": self.kid, "x5t": self.kid, "n": _b64url_int(numbers.n),
                "e": _b64url_int(numbers.e), "endorsements": list(self.endorsements)}


@dataclass
class _Conversation:
    id: str
    tenant_id: str
    aad_object_id: str
    installed: bool = True
    log: list[dict[str, Any]] = field(default_factory=list)
    posted: set[int] = field(default_factory=set)  # seq of the log's sends and replies (not updates, deletes)
    live: set[str] = field(default_factory=set)  # ids of the bot's activities not deleted


@dataclass
class _Fault:
    status: int
    remaining: int
    retry_after: float | None
    path_contains: str | None


@dataclass(frozen=True)
class _Answer:
    status: int
    body: bytes
    content_type: str = "application/json; charset=utf-8"
    headers: Mapping[str, str] = field(default_factory=dict)


class _ConnectorError(Exception):
    """An error the connector answers as ``{"error": {"code", "message"}}``."""

    def __init__(self, status: int, code: str, message: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message, self.headers = status, code, message, dict(headers or {})


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64url_int(value: int) -> str:
    return _b64url(value.to_bytes((value.bit_length() + 7) // 8, "big"))


def _derived(*parts: str) -> bytes:
    return hashlib.sha256("\x1f".join(parts).encode()).digest()




def _thumbprint(key: rsa.RSAPrivateKey) -> str:
    """A kid shaped as the channel's (the base64url SHA-1 of the public key: 27 characters)."""
    der = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return _b64url(hashlib.sha1(der, usedforsecurity=False).digest())


def _iso_z(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _json_answer(status: int, payload: Any, headers: Mapping[str, str] | None = None) -> _Answer:
    return _Answer(status, json.dumps(payload).encode(), headers=dict(headers or {}))


def _error_answer(error: _ConnectorError) -> _Answer:
    return _json_answer(error.status, {"error": {"code": error.code, "message": error.message}}, error.headers)


def _retry_after_header(seconds: float) -> str:
    return str(int(seconds)) if float(seconds).is_integer() else f"{seconds:g}"


class BotConnectorStandIn(ServedOnAThread):
    """The Teams channel and its Bot Connector on http://127.0.0.1; see the module docstring for what it answers."""

    thread_name = "Bot Connector stand-in"

    def __init__(self, *, port: int = 0, app_id: str, bot_endpoint: str | None = None,
                 token_jwks: Callable[[], dict] | None = None, region: str = "amer",
                 signing_key: rsa.RSAPrivateKey | None = None) -> None:
        self.port = port
        self.app_id = app_id
        self.bot_endpoint = bot_endpoint
        self.token_jwks = token_jwks
        self.region = region
        self.base_url = f"http://127.0.0.1:{port}" if port else ""
        self.metadata_requests = 0
        self.keys_requests = 0
        self.requests_log: list[tuple[str, str, int]] = []
        self._lock = threading.RLock()
        main = signing_key or new_signing_key()
        self._main = _Key(main, _thumbprint(main), MAIN_ENDORSEMENTS)
        self._webchat_only = _Key(new_signing_key(), WEBCHAT_ONLY_KID, ("webchat",))
        self._forged: dict[str, _Key] = {}  # "untrusted" / "unknown-kid" keys, made on first use
        self._users: dict[tuple[str, str], TeamsUser] = {}  # (tenant, lower-case email) -> user
        self._by_object_id: dict[tuple[str, str], TeamsUser] = {}  # (tenant, lower-case aadObjectId) -> user
        self._conversations: dict[str, _Conversation] = {}
        self._faults: list[_Fault] = []
        self._rate: float | None = None
        self._bucket = 0.0
        self._bucket_at = 0.0
        self._last_activity_id = 0
        self._log_requests = False

    # lifecycle

    def _make_server(self) -> _Server:
        server = _Server(("127.0.0.1", self.port), _Handler)
        server.standin = self
        return server

    @property
    def service_url(self) -> str:
        return f"{self.base_url}/{self.region}/"

    @property
    def openid_metadata_url(self) -> str:
        return f"{self.base_url}/v1/.well-known/openidconfiguration"

    @property
    def issuer(self) -> str:
        return ISSUER

    @property
    def bot_id(self) -> str:
        return f"28:{self.app_id}"

    # keys and channel tokens

    def jwks(self) -> dict[str, Any]:
        """The JWKS the channel publishes: the main key, then the webchat-only key."""
        with self._lock:
            return {"keys": [self._main.jwk(), self._webchat_only.jwk()]}

    @property
    def main_kid(self) -> str:
        with self._lock:
            return self._main.kid

    def rotate_keys(self) -> str:
        """Replace the main key by a new one (a new kid; the old key leaves the JWKS); returns the new kid."""
        key = new_signing_key()
        with self._lock:
            self._main = _Key(key, _thumbprint(key), MAIN_ENDORSEMENTS)
            return self._main.kid

    def channel_token(self, *, service_url: str | None = None, audience: str | None = None, issuer: str | None = None,
                      expires_in: int = 3600, not_before_offset: int = 0, kid: str | None = None,
                      sign_with: str = "main", extra_claims: dict | None = None) -> str:
        """A token as the channel signs one for the bot (see ``sign_with`` in the module docstring); a negative
        ``expires_in`` makes an expired token, ``kid`` overrides the header's kid and x5t, ``extra_claims`` add or
        replace claims (None removes one)."""
        key = self._key_for(sign_with)
        now = int(time.time())
        claims: dict[str, Any] = {
            "serviceurl": self.service_url if service_url is None else service_url,
            "nbf": now + not_before_offset,
            "exp": now + expires_in,
            "iss": ISSUER if issuer is None else issuer,
            "aud": self.app_id if audience is None else audience,
            "iat": now,
        }
        for name, value in (extra_claims or {}).items():
            if value is None:
                claims.pop(name, None)
            else:
                claims[name] = value
        header_kid = key.kid if kid is None else kid
        return jwt.encode(claims, key.private, algorithm="RS256",
                          headers={"typ": "JWT", "kid": header_kid, "x5t": header_kid})

    def _key_for(self, sign_with: str) -> _Key:
        with self._lock:
            if sign_with == "main":
                return self._main
            if sign_with == WEBCHAT_ONLY_KID:
                return self._webchat_only
            if sign_with == "untrusted":  # a key nobody published, presenting the main kid
                forged = self._forged.setdefault("untrusted", _Key(new_signing_key(), "", MAIN_ENDORSEMENTS))
                return _Key(forged.private, self._main.kid, MAIN_ENDORSEMENTS)
            if sign_with == "unknown-kid":
                key = self._forged.get("unknown-kid")
                if key is None:
                    private = new_signing_key()
                    key = self._forged["unknown-kid"] = _Key(private, _thumbprint(private), MAIN_ENDORSEMENTS)
                return key
        raise ValueError(f"sign_with must be one of {', '.join(SIGN_WITH)}, not {sign_with!r}")

    # Teams' directory and installations

    def add_user(self, tenant_id: str, email: str, *, name: str | None = None, aad_object_id: str | None = None,
                 user_principal_name: str | None = None) -> TeamsUser:
        """The tenant's user with that email, created on first call (aadObjectId derived from tenant and email
        unless given); a later call returns the same user, with ``name`` / ``user_principal_name`` updated when
        given. A different ``aad_object_id`` for a known email raises ValueError."""
        tid = tenant_id.lower()
        with self._lock:
            known = self._users.get((tid, email.lower()))
            if known is not None and aad_object_id and aad_object_id.lower() != known.aad_object_id:
                raise ValueError(f"{email} is already user {known.aad_object_id} of tenant {tid}")
            object_id = known.aad_object_id if known else (
                aad_object_id or str(uuid.uuid5(_NAMESPACE, f"user:{tid}:{email.lower()}"))).lower()
            user = TeamsUser(
                tenant_id=tid,
                aad_object_id=object_id,
                id=known.id if known else "29:1" + _b64url(_derived("29", self.app_id, tid, object_id))[:42],
                name=name or (known.name if known else _name_from_email(email)),
                email=known.email if known else email,
                upn=user_principal_name or (known.upn if known else email),
            )
            self._users[(tid, email.lower())] = user
            self._by_object_id[(tid, object_id)] = user
            return user

    def user(self, tenant_id: str, aad_object_id: str) -> TeamsUser | None:
        with self._lock:
            return self._by_object_id.get((tenant_id.lower(), aad_object_id.lower()))

    def find_user(self, tenant_id: str, email: str) -> TeamsUser | None:
        with self._lock:
            return self._users.get((tenant_id.lower(), email.lower()))

    def install(self, tenant_id: str, aad_object_id: str) -> str:
        """Install the app for the user (personal scope); returns the 1:1 conversation id (the same every time)."""
        user = self._known_user(tenant_id, aad_object_id)
        conversation_id = "a:1" + _b64url(_derived("a", self.app_id, user.tenant_id, user.aad_object_id))[:56]
        with self._lock:
            conversation = self._conversations.get(conversation_id)
            if conversation is None:
                self._conversations[conversation_id] = _Conversation(conversation_id, user.tenant_id,
                                                                     user.aad_object_id)
            else:
                conversation.installed = True
        return conversation_id

    def uninstall(self, tenant_id: str, aad_object_id: str) -> None:
        """Remove the app for the user: their conversation stays known, but the bot is no longer in it."""
        with self._lock:
            conversation = self._conversation_for(tenant_id, aad_object_id)
            if conversation is not None:
                conversation.installed = False

    def conversation_of(self, tenant_id: str, aad_object_id: str) -> str | None:
        """The user's 1:1 conversation id while the app is installed for them, else None."""
        with self._lock:
            conversation = self._conversation_for(tenant_id, aad_object_id)
            return conversation.id if conversation is not None and conversation.installed else None

    def _conversation_for(self, tenant_id: str, aad_object_id: str) -> _Conversation | None:
        tid, object_id = tenant_id.lower(), aad_object_id.lower()
        return next((conversation for conversation in self._conversations.values()
                     if conversation.tenant_id == tid and conversation.aad_object_id == object_id), None)

    def _known_user(self, tenant_id: str, aad_object_id: str) -> TeamsUser:
        user = self.user(tenant_id, aad_object_id)
        if user is None:
            raise KeyError(f"no user {aad_object_id} in tenant {tenant_id}: add_user first")
        return user

    # observability

    def activities(self, conversation_id: str, *, after: int = 0, include_typing: bool = True) -> list[dict]:
        """The conversation's log (what the bot posted, updated, deleted) after ``seq`` ``after``, in order."""
        with self._lock:
            conversation = self._conversations.get(conversation_id)
            entries = conversation.log if conversation is not None else []
            return [copy.deepcopy(entry) for entry in entries
                    if entry["seq"] > after and (include_typing or entry.get("type") != "typing")]

    def sent_count(self, conversation_id: str | None = None, *, include_typing: bool = True) -> int:
        """How many activities the bot posted (sends and replies, not updates or deletes)."""
        with self._lock:
            conversations = ([self._conversations[conversation_id]] if conversation_id in self._conversations
                             else [] if conversation_id is not None else list(self._conversations.values()))
            return sum(1 for conversation in conversations for entry in conversation.log
                       if entry["seq"] in conversation.posted and (include_typing or entry.get("type") != "typing"))

    # faults and rate limits

    def fail_next(self, status: int, *, count: int = 1, retry_after: float | None = None,
                  path_contains: str | None = None) -> None:
        """Answer the next ``count`` REST calls (matching ``path_contains``) with ``status`` and its error body."""
        HTTPStatus(status)  # a ValueError for a status that does not exist
        with self._lock:
            self._faults.append(_Fault(status, count, retry_after, path_contains))

    def clear_faults(self) -> None:
        """Forget pending ``fail_next`` faults and the rate limit."""
        with self._lock:
            self._faults.clear()
            self._rate = None

    def limit_rate(self, per_second: float | None) -> None:
        """Refuse REST calls beyond ``per_second`` (a token bucket over all of them) with 429; None: no limit."""
        with self._lock:
            self._rate = per_second if per_second and per_second > 0 else None
            self._bucket = max(1.0, self._rate or 0.0)
            self._bucket_at = time.monotonic()

    def _fault_for(self, raw_path: str) -> _ConnectorError | None:
        with self._lock:
            decoded = unquote(raw_path)
            for fault in self._faults:
                wanted = fault.path_contains
                if wanted is None or wanted in raw_path or wanted in decoded:
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        self._faults.remove(fault)
                    break
            else:
                return None
        headers = {} if fault.retry_after is None else {"Retry-After": _retry_after_header(fault.retry_after)}
        if fault.status == 401:
            return _ConnectorError(401, "", DENIED["message"], headers)
        phrase = HTTPStatus(fault.status).phrase
        return _ConnectorError(fault.status, phrase.replace(" ", "").replace("-", ""),
                               f"{phrase} (a fault injected by the stand-in)", headers)

    def _throttled(self) -> bool:
        with self._lock:
            if self._rate is None:
                return False
            now = time.monotonic()
            self._bucket = min(max(1.0, self._rate), self._bucket + (now - self._bucket_at) * self._rate)
            self._bucket_at = now
            if self._bucket >= 1.0:
                self._bucket -= 1.0
                return False
            return True

    # activities Teams sends to the bot

    def _new_activity_id(self) -> str:
        """Teams' ids in 1:1 chats: epoch milliseconds, unique here."""
        with self._lock:
            self._last_activity_id = max(self._last_activity_id + 1, time.time_ns() // 1_000_000)
            return str(self._last_activity_id)

    def _envelope(self, user: TeamsUser, conversation_id: str, activity_type: str, activity_id: str) -> dict:
        now = datetime.now(UTC)
        return {
            "type": activity_type,
            "id": activity_id,
            "timestamp": _iso_z(now),
            "localTimestamp": now.isoformat(timespec="milliseconds"),
            "localTimezone": "Etc/UTC",
            "serviceUrl": self.service_url,
            "channelId": "msteams",
            "from": {"id": user.id, "name": user.name, "aadObjectId": user.aad_object_id},
            "conversation": {"conversationType": "personal", "tenantId": user.tenant_id, "id": conversation_id},
            "recipient": {"id": self.bot_id, "name": BOT_NAME},
            "entities": [{"type": "clientInfo", "locale": "en-US", "country": "US", "platform": "Web",
                          "timezone": "Etc/UTC"}],
            "channelData": {"tenant": {"id": user.tenant_id}},
            "locale": "en-US",
        }

    def message_activity(self, tenant_id: str, aad_object_id: str, text: str, *, activity_id: str | None = None,
                         extra: dict | None = None) -> dict:
        """A Teams message from the user to the bot in their 1:1 chat (installing the app first when needed);
        ``extra`` adds or replaces top-level fields."""
        user = self._known_user(tenant_id, aad_object_id)
        conversation_id = self.conversation_of(tenant_id, aad_object_id) or self.install(tenant_id, aad_object_id)
        activity = self._envelope(user, conversation_id, "message", activity_id or self._new_activity_id())
        activity.update(textFormat="plain", text=text)
        activity.update(extra or {})
        return activity

    def installation_update_activity(self, tenant_id: str, aad_object_id: str, action: str = "add") -> dict:
        """The ``installationUpdate`` Teams sends when the user adds ("add") or removes ("remove") the app; the
        installation changes accordingly."""
        if action not in ("add", "remove"):
            raise ValueError(f"action must be 'add' or 'remove', not {action!r}")
        user = self._known_user(tenant_id, aad_object_id)
        conversation_id = self.install(tenant_id, aad_object_id)
        if action == "remove":
            self.uninstall(tenant_id, aad_object_id)
        activity = self._envelope(user, conversation_id, "installationUpdate", f"f:{secrets.randbits(63)}")
        activity["action"] = action
        return activity

    def conversation_update_activity(self, tenant_id: str, aad_object_id: str) -> dict:
        """The ``conversationUpdate`` (the bot in ``membersAdded``) that comes with a personal install; installs."""
        user = self._known_user(tenant_id, aad_object_id)
        conversation_id = self.install(tenant_id, aad_object_id)
        activity = self._envelope(user, conversation_id, "conversationUpdate", f"f:{secrets.randbits(63)}")
        activity["membersAdded"] = [{"id": self.bot_id}]
        return activity

    def send_to_bot(self, activity: dict, *, token: str | None = None) -> httpx.Response:
        """POST the activity to ``bot_endpoint`` as the channel does, with ``token`` or a fresh channel token
        (for the activity's serviceUrl)."""
        if not self.bot_endpoint:
            raise RuntimeError("the Bot Connector stand-in has no bot_endpoint to send to")
        bearer = token if token is not None else self.channel_token(service_url=activity.get("serviceUrl"))
        return httpx.post(self.bot_endpoint, json=activity, timeout=30,
                          headers={"Authorization": f"Bearer {bearer}", "User-Agent": "Microsoft-SkypeBotApi"})

    # HTTP

    def _handle(self, method: str, target: str, headers: Mapping[str, str], body: bytes) -> _Answer:
        parts = urlsplit(target)
        segments = [unquote(segment) for segment in parts.path.strip("/").split("/")]
        if segments[0] == "_standin":
            return self._control(method, segments[1:], parse_qs(parts.query), body)
        if method == "GET" and segments == ["v1", ".well-known", "openidconfiguration"]:
            with self._lock:
                self.metadata_requests += 1
            return _json_answer(200, {
                "issuer": ISSUER,
                "authorization_endpoint": "https://invalid.botframework.com",
                "jwks_uri": f"{self.base_url}/v1/.well-known/keys",
                "id_token_signing_alg_values_supported": ["RS256"],
                "token_endpoint_auth_methods_supported": ["private_key_jwt"],
            })
        if method == "GET" and segments == ["v1", ".well-known", "keys"]:
            with self._lock:
                self.keys_requests += 1
            return _json_answer(200, self.jwks())
        if len(segments) > 1 and segments[0] != "v3" and segments[1] == "v3":
            segments = segments[1:]  # the region prefix of the service URL
        if segments[0] != "v3":
            return _error_answer(_ConnectorError(404, "NotFound", "No resource matches the request URI."))
        try:
            answer = self._connector(method, segments[1:], parts.path, headers, body)
        except _ConnectorError as error:
            answer = _json_answer(401, DENIED, error.headers) if error.status == 401 else _error_answer(error)
        with self._lock:
            self.requests_log.append((method, target, answer.status))
        return answer

    def _authorized(self, headers: Mapping[str, str]) -> bool:
        scheme, _, token = (headers.get("Authorization") or "").strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return False
        try:
            if self.token_jwks is None:
                claims = jwt.decode(token, options={"verify_signature": False})
            else:
                header = jwt.get_unverified_header(token)
                keys = jwt.PyJWKSet.from_dict(self.token_jwks()).keys
                key = next((key for key in keys if key.key_id == header.get("kid")), None)
                if key is None or header.get("alg") != "RS256":
                    return False
                claims = jwt.decode(token, key.key, algorithms=["RS256"], audience=CONNECTOR_AUDIENCE,
                                    leeway=CLOCK_SKEW_SECONDS, options={"require": ["exp", "aud"]})
        except (jwt.PyJWTError, ValueError, TypeError):
            return False
        audiences = claims.get("aud")
        audiences = audiences if isinstance(audiences, list) else [audiences]
        app = self.app_id.lower()
        return CONNECTOR_AUDIENCE in audiences and app in (str(claims.get("appid", "")).lower(),
                                                           str(claims.get("azp", "")).lower())

    def _connector(self, method: str, route: list[str], raw_path: str, headers: Mapping[str, str],
                   body: bytes) -> _Answer:
        if not self._authorized(headers):
            raise _ConnectorError(401, "", DENIED["message"], {"WWW-Authenticate": "Bearer"})
        fault = self._fault_for(raw_path)
        if fault is not None:
            raise fault
        if self._throttled():
            raise _ConnectorError(429, "TooManyRequests", "Too many requests: the bot exceeded its rate limit.",
                                  {"Retry-After": "1"})
        if route == ["conversations"] and method == "POST":
            return self._create_conversation(_json_body(body))
        if len(route) >= 3 and route[0] == "conversations" and route[2] == "activities":
            if len(route) == 3 and method == "POST":
                return self._post_activity(route[1], None, _json_body(body))
            if len(route) == 4 and method == "POST":
                return self._post_activity(route[1], route[3], _json_body(body))
            if len(route) == 4 and method == "PUT":
                return self._update_activity(route[1], route[3], _json_body(body))
            if len(route) == 4 and method == "DELETE":
                return self._delete_activity(route[1], route[3])
        if len(route) == 4 and route[0] == "conversations" and route[2] == "members" and method == "GET":
            return self._member(route[1], route[3])
        raise _ConnectorError(404, "NotFound", f"No resource matches {method} {raw_path}.")

    def _create_conversation(self, parameters: dict[str, Any]) -> _Answer:
        channel_data = parameters.get("channelData")
        tenant = channel_data.get("tenant") if isinstance(channel_data, dict) else None
        tenant_id = (tenant.get("id") if isinstance(tenant, dict) else None) or parameters.get("tenantId")
        if not isinstance(tenant_id, str) or not tenant_id:
            raise _ConnectorError(400, "BadArgument", "Could not parse tenant id")
        members = parameters.get("members")
        if parameters.get("isGroup") or not isinstance(members, list) or len(members) != 1 \
                or not isinstance(members[0], dict):
            raise _ConnectorError(400, "BadArgument", "The stand-in creates 1:1 conversations only: isGroup false "
                                  "and exactly one member.")
        member_id = members[0].get("id") or members[0].get("aadObjectId")
        user = self._member_of_tenant(tenant_id, str(member_id or ""))
        if user is None:
            raise _ConnectorError(404, "NotFound", "User not found")
        conversation_id = self.conversation_of(user.tenant_id, user.aad_object_id)
        if conversation_id is None:
            raise _ConnectorError(403, "Forbidden", NOT_IN_ROSTER)
        activity_id = None
        if parameters.get("activity") is not None:
            activity = parameters["activity"]
            _check_activity(activity)
            activity_id = self._record(conversation_id, dict(activity), reply_to=None)
        return _json_answer(201, {"id": conversation_id, "activityId": activity_id, "serviceUrl": self.service_url})

    def _member_of_tenant(self, tenant_id: str, member_id: str) -> TeamsUser | None:
        tid = tenant_id.lower()
        with self._lock:
            if member_id.startswith("29:"):
                return next((user for (tenant, _), user in self._by_object_id.items()
                             if tenant == tid and user.id == member_id), None)
            return self._by_object_id.get((tid, member_id.lower()))

    def _open_conversation(self, conversation_id: str) -> _Conversation:
        conversation = self._conversations.get(conversation_id)
        if conversation is None:
            raise _ConnectorError(404, "ConversationNotFound", "Conversation not found.")
        if not conversation.installed:
            raise _ConnectorError(403, "BotNotInConversationRoster", NOT_IN_ROSTER)
        return conversation

    def _post_activity(self, conversation_id: str, reply_to: str | None, activity: dict[str, Any]) -> _Answer:
        _check_activity(activity)
        return _json_answer(201, {"id": self._record(conversation_id, activity, reply_to=reply_to)})

    def _record(self, conversation_id: str, activity: dict[str, Any], *, reply_to: str | None) -> str:
        with self._lock:
            conversation = self._open_conversation(conversation_id)
            activity_id = self._new_activity_id()
            entry = {**activity, "id": activity_id, "timestamp": _iso_z(datetime.now(UTC)),
                     "from": {"id": self.bot_id, "name": BOT_NAME},
                     "conversation": {"conversationType": "personal", "tenantId": conversation.tenant_id,
                                      "id": conversation.id}}
            if reply_to is not None:
                entry["replyToId"] = reply_to
            self._append(conversation, entry, posted=True)
            conversation.live.add(activity_id)
            return activity_id

    @staticmethod
    def _append(conversation: _Conversation, entry: dict[str, Any], *, posted: bool) -> None:
        entry["seq"] = len(conversation.log) + 1
        conversation.log.append(entry)
        if posted:
            conversation.posted.add(entry["seq"])

    def _update_activity(self, conversation_id: str, activity_id: str, activity: dict[str, Any]) -> _Answer:
        _check_activity(activity)
        with self._lock:
            conversation = self._open_conversation(conversation_id)
            if activity_id not in conversation.live:
                raise _ConnectorError(404, "NotFound", "Activity not found.")
            self._append(conversation, {**activity, "id": activity_id, "timestamp": _iso_z(datetime.now(UTC)),
                                        "from": {"id": self.bot_id, "name": BOT_NAME}, "updated": True},
                         posted=False)
        return _json_answer(200, {"id": activity_id})

    def _delete_activity(self, conversation_id: str, activity_id: str) -> _Answer:
        with self._lock:
            conversation = self._open_conversation(conversation_id)
            if activity_id not in conversation.live:
                raise _ConnectorError(404, "NotFound", "Activity not found.")
            conversation.live.discard(activity_id)
            self._append(conversation, {"type": "messageDelete", "id": activity_id, "deleted": True,
                                        "timestamp": _iso_z(datetime.now(UTC))}, posted=False)
        return _json_answer(200, {})

    def _member(self, conversation_id: str, member_id: str) -> _Answer:
        with self._lock:
            conversation = self._open_conversation(conversation_id)
            user = self._member_of_tenant(conversation.tenant_id, member_id)
        if user is None or user.aad_object_id != conversation.aad_object_id:
            raise _ConnectorError(404, "MemberNotFoundInConversation", "The specified member was not found")
        account = {"id": user.id, "name": user.name, "aadObjectId": user.aad_object_id, "email": user.email,
                   "userPrincipalName": user.upn, "tenantId": user.tenant_id, "userRole": "user"}
        if user.given_name:
            account.update(givenName=user.given_name, surname=user.surname)
        return _json_answer(200, account)

    # control endpoints, for a client in another process

    def _control(self, method: str, path: list[str], query: Mapping[str, list[str]], body: bytes) -> _Answer:
        try:
            if method == "GET" and len(path) == 3 and path[0] == "conversations" and path[2] == "activities":
                with self._lock:
                    if path[1] not in self._conversations:
                        return _json_answer(404, {"error": f"no conversation {path[1]}"})
                after = int((query.get("after") or ["0"])[0])
                include_typing = (query.get("include_typing") or ["true"])[0].lower() not in ("false", "0", "no")
                return _json_answer(200, {"activities": self.activities(path[1], after=after,
                                                                        include_typing=include_typing)})
            if method == "GET" and path == ["requests"]:
                with self._lock:
                    return _json_answer(200, {"requests": [list(entry) for entry in self.requests_log]})
            document = json.loads(body or b"{}")
            if not isinstance(document, dict):
                return _json_answer(400, {"error": "the body must be a JSON object"})
            if method == "POST" and path == ["users"]:
                user = self.add_user(document["tenant_id"], document["email"], name=document.get("name"),
                                     aad_object_id=document.get("aad_object_id"),
                                     user_principal_name=document.get("user_principal_name"))
                conversation_id = self.install(user.tenant_id, user.aad_object_id)
                return _json_answer(201, _user_document(user, conversation_id))
            if method == "POST" and path == ["send"]:
                return self._control_send(document)
            if method == "DELETE" and path == ["fail"]:
                self.clear_faults()
                return _json_answer(200, {"pending": 0})
            if method == "POST" and path == ["fail"]:
                self.fail_next(int(document["status"]), count=int(document.get("count", 1)),
                               retry_after=document.get("retry_after"), path_contains=document.get("path_contains"))
                with self._lock:
                    return _json_answer(200, {"pending": sum(fault.remaining for fault in self._faults)})
            if method == "POST" and path == ["rate"]:
                self.limit_rate(document.get("per_second"))
                return _json_answer(200, {"per_second": self._rate})
            if method == "POST" and path == ["bot"]:
                self.bot_endpoint = document.get("bot_endpoint") or None
                return _json_answer(200, {"bot_endpoint": self.bot_endpoint})
        except (KeyError, TypeError, ValueError) as error:
            return _json_answer(400, {"error": f"missing or malformed field: {error}"})
        return _json_answer(404, {"error": "not_found"})

    def _control_send(self, document: dict[str, Any]) -> _Answer:
        tenant_id, email = document["tenant_id"], document["email"]
        user = self.find_user(tenant_id, email) or self.add_user(tenant_id, email, name=document.get("name"))
        kind = document.get("type", "message")
        if kind == "message":
            activity = self.message_activity(user.tenant_id, user.aad_object_id, str(document["text"]))
        elif kind == "installationUpdate":
            activity = self.installation_update_activity(user.tenant_id, user.aad_object_id,
                                                         document.get("action", "add"))
        elif kind == "conversationUpdate":
            activity = self.conversation_update_activity(user.tenant_id, user.aad_object_id)
        else:
            return _json_answer(400, {"error": f"unknown type {kind!r}"})
        if not self.bot_endpoint:
            return _json_answer(409, {"error": "the stand-in has no bot endpoint (POST /_standin/bot)"})
        try:
            response = self.send_to_bot(activity)
        except httpx.HTTPError as error:
            return _json_answer(502, {"error": f"the bot could not be reached: {error!r}"})
        try:
            answer: Any = response.json() if response.content else None
        except ValueError:
            answer = response.text[:2000]
        return _json_answer(200, {"status": response.status_code, "activity_id": activity["id"],
                                  "conversation_id": activity["conversation"]["id"], "body": answer})


def _name_from_email(email: str) -> str:
    local = email.split("@", 1)[0]
    return " ".join(part.capitalize() for part in local.replace("_", ".").split(".") if part) or email


def _json_body(body: bytes) -> dict[str, Any]:
    try:
        document = json.loads(body or b"null")
    except ValueError:
        raise _ConnectorError(400, "BadArgument", "The request body is not JSON.") from None
    if not isinstance(document, dict):
        raise _ConnectorError(400, "BadArgument", "The request body must be a JSON object.")
    return document


def _check_activity(activity: Any) -> None:
    if not isinstance(activity, dict) or not isinstance(activity.get("type"), str) or not activity["type"]:
        raise _ConnectorError(400, "BadArgument", "The activity must be a JSON object with a type.")


def _user_document(user: TeamsUser, conversation_id: str | None) -> dict[str, Any]:
    return {"tenant_id": user.tenant_id, "aad_object_id": user.aad_object_id, "id": user.id,
            "conversation_id": conversation_id, "name": user.name, "email": user.email,
            "user_principal_name": user.upn}


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    standin: BotConnectorStandIn


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"  # keep-alive, as the connector SDK's pooled requests session expects
    # Headers and body go out as two writes: without TCP_NODELAY, Nagle holds the body back until the
    # client's delayed ACK (40 ms) on a kept-alive connection.
    disable_nagle_algorithm = True
    timeout = 30  # idle keep-alive connections end instead of holding a thread

    def _dispatch(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        try:
            answer = self.server.standin._handle(self.command, self.path, self.headers, body)
        except Exception:  # a bug of the stand-in: answer as the connector would and keep serving
            import traceback

            traceback.print_exc()
            answer = _json_answer(500, {"error": {"code": "ServiceError", "message": "stand-in failure"}})
        write_answer(self, answer.status, answer.content_type, answer.body,
                     {"MS-CV": _b64url(secrets.token_bytes(12)), **answer.headers})

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _dispatch

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.standin._log_requests:
            sys.stderr.write(f"bot connector stand-in: {format % args}\n")


# --- command line ------------------------------------------------------------------------------------------




def remote_jwks(url: str, *, ca_file: Path | None = None, max_age: float = 60.0) -> Callable[[], dict]:
    """A ``token_jwks`` that fetches a JWKS over http(s) (e.g. a running Entra stand-in's
    ``/{tid}/discovery/v2.0/keys``), kept for ``max_age`` seconds."""
    verify: ssl.SSLContext | bool = ssl.create_default_context(cafile=str(ca_file)) if ca_file else True
    cached: dict[str, Any] = {"at": -math.inf, "jwks": {"keys": []}}
    lock = threading.Lock()

    def fetch() -> dict:
        with lock:
            if time.monotonic() - cached["at"] > max_age:
                response = httpx.get(url, verify=verify, timeout=10)
                response.raise_for_status()
                cached.update(at=time.monotonic(), jwks=response.json())
            return cached["jwks"]

    return fetch


def _serve(args: argparse.Namespace) -> int:
    signing_key = None
    if args.state_dir is not None:
        state: Path = args.state_dir.resolve()
        state.mkdir(parents=True, exist_ok=True)
        signing_key = signing_key_at(state / "botconnector-signing-key.pem")
    token_jwks = remote_jwks(args.token_jwks_url, ca_file=args.ca_file) if args.token_jwks_url else None
    standin = BotConnectorStandIn(port=args.port, app_id=args.app_id, bot_endpoint=args.bot_endpoint,
                                  token_jwks=token_jwks, region=args.region, signing_key=signing_key)
    standin._log_requests = args.verbose
    return serve_in_foreground(standin, args.port,
                               "Bot Connector stand-in on {base_url}; Ctrl-C stops it\n"
                               "  TO_BOT_FROM_CHANNEL_OPENID_METADATA_URL={base_url}/v1/.well-known/openidconfiguration"
                               f"\n  service URL {{base_url}}/{args.region}/, bot endpoint {args.bot_endpoint}")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m local.botconnector",
                                     description="Local stand-in of the Teams channel and the Bot Connector API")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve the stand-in until Ctrl-C")
    serve.add_argument("--port", type=int, default=DEFAULT_PORT)
    serve.add_argument("--app-id", required=True, help="the bot's Microsoft App ID")
    serve.add_argument("--bot-endpoint", help="the bot's /api/messages URL (POST /_standin/bot sets it later)")
    serve.add_argument("--region", default="amer", help="the service URL's region prefix (default amer)")
    serve.add_argument("--token-jwks-url", help="verify the bot's tokens against this JWKS (e.g. the Entra "
                                                "stand-in's https://127.0.0.1:7082/{tid}/discovery/v2.0/keys)")
    serve.add_argument("--ca-file", type=Path, help="the CA that signs --token-jwks-url's certificate")
    serve.add_argument("--state-dir", type=Path, help="keep the main signing key here (e.g. .local)")
    serve.add_argument("--verbose", action="store_true", help="log every request to stderr")
    serve.set_defaults(run=_serve)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
