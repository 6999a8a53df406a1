"""The chatbot contract that tenant instances implement: we relay a user's Teams message, they answer.

``POST {instance base URL}/api/connect/chat`` with ``Authorization: Basic base64(client_id:secret)`` — the
instance app's client id and the secret behind its ``connect`` outbound secret reference — and a JSON body::

    {"turn_id": "...", "tenant": "acme", "user": {"id": "<user uuid>", "email": "...", "display_name": "..."},
     "conversation_id": "...", "text": "...", "locale": "en-US"}

The instance answers 200 ``{"text": "...", "card": {<Adaptive Card>}?}`` (at least one of the two). A turn
handed to the queue after ``TEAMS_CHAT_INLINE_SECONDS`` is sent again with the same ``turn_id``: an
instance answers a turn id it has seen with the same answer instead of working twice.

Contract (tests/teams/test_chat.py): ``ask`` returns a ``ChatAnswer`` or raises ``ChatTimeout`` (no answer
within the timeout) or ``ChatUnavailable`` with a reason for the log: no instance app, no ``connect``
secret, an error status, a body that breaks the contract, a connection failure. No retries: the turn's time
is short and the message is not idempotent for an instance that ignores turn ids.
"""

from __future__ import annotations

import base64
import threading
from dataclasses import dataclass
from typing import Any

import httpx

from shared import db
from shared.http import OutboundClient, OutboundError, RetryPolicy
from shared.secrets import SecretError, resolve_secret

CHAT_PATH = "/api/connect/chat"
CONNECT_SECRET_REFERENCE = "connect"  # noqa: S105 - the instance app's outbound secret reference for this call
MAX_ANSWER_TEXT = 28_000  # Teams refuses messages over about 28 KB


class ChatUnavailable(Exception):
    """The tenant's chatbot could not answer; the message is for the log, never for the user."""


class ChatTimeout(ChatUnavailable):
    pass


class ChatNotConfigured(ChatUnavailable):
    """The tenant has no instance app, or no ``connect`` secret for it: an admin's task, not an outage."""


@dataclass(frozen=True)
class ChatRequest:
    turn_id: str
    tenant_id: str
    tenant_slug: str
    user_id: str
    email: str | None
    display_name: str | None
    conversation_id: str
    text: str
    locale: str | None = None

    def body(self) -> dict[str, Any]:
        return {"turn_id": self.turn_id, "tenant": self.tenant_slug,
                "user": {"id": self.user_id, "email": self.email, "display_name": self.display_name},
                "conversation_id": self.conversation_id, "text": self.text, "locale": self.locale}

    def as_message(self) -> dict[str, Any]:
        return {"turn_id": self.turn_id, "tenant_id": self.tenant_id, "tenant_slug": self.tenant_slug,
                "user_id": self.user_id, "email": self.email, "display_name": self.display_name,
                "conversation_id": self.conversation_id, "text": self.text, "locale": self.locale}

    @classmethod
    def from_message(cls, message: dict[str, Any]) -> ChatRequest:
        return cls(**{name: message.get(name) for name in cls.__dataclass_fields__})  # type: ignore[arg-type]


@dataclass(frozen=True)
class ChatAnswer:
    text: str | None
    card: dict[str, Any] | None


@dataclass(frozen=True)
class _Instance:
    url: str
    authorization: str


def _instance(tenant_id: str) -> _Instance:
    """The tenant's instance app (its default app when that is an instance, else the first by name)."""
    with db.transaction(tenant_id=tenant_id) as conn:
        row = conn.execute(
            "SELECT a.name, a.base_url, a.client_id, a.outbound_secret_refs ->> %s FROM apps a"
            " JOIN tenants t ON t.id = a.tenant_id WHERE a.tenant_id = %s AND a.kind = 'instance'"
            " ORDER BY a.name = (t.routing ->> 'default_app') DESC NULLS LAST, a.name LIMIT 1",
            [CONNECT_SECRET_REFERENCE, tenant_id]).fetchone()
    if row is None:
        raise ChatNotConfigured("the tenant has no instance app to relay chat to")
    name, base_url, client_id, reference = row
    if not reference:
        raise ChatNotConfigured(f"app {name!r} has no {CONNECT_SECRET_REFERENCE!r} outbound secret reference "
                              f"(`app update --outbound-secret {CONNECT_SECRET_REFERENCE}=KEYVAULT_NAME`)")
    try:
        secret = resolve_secret(reference)
    except SecretError as error:
        raise ChatNotConfigured(f"app {name!r}: {error}") from None
    token = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    return _Instance(base_url.rstrip("/") + CHAT_PATH, f"Basic {token}")


_client_lock = threading.Lock()
_client: OutboundClient | None = None


def _outbound() -> OutboundClient:
    """One client per process: building the guarded transport (TLS context) costs milliseconds."""
    global _client
    with _client_lock:
        if _client is None:
            _client = OutboundClient("chatbot", retry=RetryPolicy(max_attempts=1))
        return _client


def _answer(response: httpx.Response) -> ChatAnswer:
    if response.status_code != 200:
        raise ChatUnavailable(f"the chatbot answered {response.status_code}")
    try:
        document = response.json()
    except ValueError:
        raise ChatUnavailable("the chatbot's answer is not JSON") from None
    if not isinstance(document, dict):
        raise ChatUnavailable("the chatbot's answer is not a JSON object")
    text, card = document.get("text"), document.get("card")
    if text is not None and not isinstance(text, str):
        raise ChatUnavailable("the chatbot's 'text' is not a string")
    if card is not None and not (isinstance(card, dict) and card.get("type") == "AdaptiveCard"):
        raise ChatUnavailable("the chatbot's 'card' is not an Adaptive Card")
    if not (text or "").strip() and card is None:
        raise ChatUnavailable("the chatbot answered neither text nor a card")
    return ChatAnswer(text[:MAX_ANSWER_TEXT] if text else None, card)


def ask(request: ChatRequest, *, timeout: float) -> ChatAnswer:
    """Relay one message and wait at most ``timeout`` seconds for the answer (blocking: run it off the loop)."""
    instance = _instance(request.tenant_id)
    try:
        response = _outbound().post(
            instance.url, json=request.body(), headers={"Authorization": instance.authorization},
            timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)))
    except OutboundError as error:
        if isinstance(error.__cause__, httpx.TimeoutException):
            raise ChatTimeout(f"no answer within {timeout:g} s") from None
        raise ChatUnavailable(str(error)) from None
    return _answer(response)


def reset() -> None:
    global _client
    with _client_lock:
        if _client is not None:
            _client.close()
        _client = None
