"""A local stand-in of a tenant instance's chatbot backend: what Enterprise Connections relays Teams messages to
(the caller is shared/teams/chat.py).

Contract (tests/local_stack/test_chatbot_standin.py):

- ``POST /api/connect/chat`` with ``Authorization: Basic base64(client_id:secret)`` (UTF-8) and a JSON object
  ``{"turn_id": str, "tenant": str, "user": {"id": str, "email": str|null, "display_name": str|null},
  "conversation_id": str, "text": str, "locale": str|null}`` (every key present; ``turn_id``, ``tenant``,
  ``user.id`` and ``conversation_id`` not empty) -> 200 ``{"text": "...", "card": {Adaptive Card}?}``.
- A turn seen before (same ``tenant`` and ``turn_id``, as the caller re-sends a turn it handed to its queue) is
  answered with the first answer again: no second wait and not counted as new work. A repeat that arrives while
  the first request is still waiting waits for that same answer (the work is in progress, not started again).
- Missing credentials, another scheme than Basic, a wrong client id or secret (compared with
  ``hmac.compare_digest``) -> 401 ``{"error": "unauthorized"}``. A body that breaks the contract (not JSON, not an
  object, a missing or ill-typed field) -> 400 ``{"error": "invalid_request", "message": <the field and why>}``.
  Another path -> 404 ``{"error": "not_found"}``; another method on the chat path -> 405 (``Allow: POST``).

The coach's answers are deterministic:

- ``"<First name>, you said: <text>. What would a good outcome look like for you?"`` (the first word of
  ``user.display_name``; without a display name the answer starts with ``"You said: "``);
- the word ``card`` in the text (any case) adds an Adaptive Card 1.5: one wrapping TextBlock and an
  ``Action.OpenUrl`` "Open the coach" to ``https://coach.example/<tenant>/conversations/<conversation id>``;
- the word ``slow`` in the text (any case) makes the turn wait ``max(delay, 8)`` seconds before answering, long
  enough for the caller to hand it to its queue in a demo.

Knobs, settable at runtime: ``delay`` (seconds every new turn waits), ``hang_next(seconds)`` (the next new turn
waits that long instead of ``delay``; ``slow`` still waits at least 8 s), ``fail_next(status, count=1)`` (the next
``count`` authenticated, well-formed requests -- repeats included -- are answered ``status`` with ``{"error":
<the status phrase in snake_case>, "message"}``; a failed turn is not remembered, so a retry is new work).
Waits end early when the stand-in stops.

Observability: ``requests`` (every POST to the chat path, in order of arrival: ``{"body": <the JSON document or
None>, "repeat": bool, "status": int | None}``, the status filled in once answered), ``turns_answered`` (how many
distinct turns were worked on), ``waits`` (how many new turns waited, a delay or a hang).

Command line: ``python -m local.chatbot serve --port 7091 --client-id ID --secret-env NAME [--delay S]``; the secret
is read from the environment variable NAME, never from the command line.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import hmac
import json
import os
import re
import sys
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import quote, urlsplit

from local.serving import ServedOnAThread, serve_in_foreground, write_answer

DEFAULT_PORT = 7091
CHAT_PATH = "/api/connect/chat"
SLOW_SECONDS = 8.0
COACH_URL = "https://coach.example"
CARD_SCHEMA = "http://adaptivecards.io/schemas/adaptive-card.json"
_CARD_WORD = re.compile(r"\bcard\b", re.IGNORECASE)
_SLOW_WORD = re.compile(r"\bslow\b", re.IGNORECASE)


class ContractError(ValueError):
    """A chat request that breaks the contract; the message names the field."""


@dataclass
class _Answer:
    status: int
    payload: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class _Turn:
    """One turn's work: ``done`` is set once ``answer`` is known."""

    done: threading.Event = field(default_factory=threading.Event)
    answer: dict[str, Any] | None = None


# --- the contract and the coach's answers (pure) ---------------------------------------------------------------


def check_request(document: Any) -> dict[str, Any]:
    """The request if it keeps the contract, else ``ContractError`` naming the first field that breaks it."""
    if not isinstance(document, dict):
        raise ContractError("the body must be a JSON object")
    for name in ("turn_id", "tenant", "conversation_id"):
        _required_text(document, name, name)
    if "text" not in document:
        raise ContractError("text is missing")
    if not isinstance(document["text"], str):
        raise ContractError("text must be a string")
    _optional_text(document, "locale", "locale")
    if "user" not in document:
        raise ContractError("user is missing")
    user = document["user"]
    if not isinstance(user, dict):
        raise ContractError("user must be an object")
    _required_text(user, "id", "user.id")
    _optional_text(user, "email", "user.email")
    _optional_text(user, "display_name", "user.display_name")
    return document


def _required_text(document: Mapping[str, Any], name: str, label: str) -> None:
    if name not in document:
        raise ContractError(f"{label} is missing")
    if not isinstance(document[name], str) or not document[name]:
        raise ContractError(f"{label} must be a non-empty string")


def _optional_text(document: Mapping[str, Any], name: str, label: str) -> None:
    if name not in document:
        raise ContractError(f"{label} is missing (send null when unknown)")
    if document[name] is not None and not isinstance(document[name], str):
        raise ContractError(f"{label} must be a string or null")


def first_name(display_name: str | None) -> str | None:
    words = (display_name or "").split()
    return words[0] if words else None


def coach_answer(request: Mapping[str, Any]) -> dict[str, Any]:
    """The coach's answer to a well-formed request: text, plus a card when the text has the word "card"."""
    said = request["text"].strip().rstrip(".!?").strip()
    name = first_name(request["user"].get("display_name"))
    opening = f"{name}, you said" if name else "You said"
    answer: dict[str, Any] = {"text": f"{opening}: {said}. What would a good outcome look like for you?"}
    if _CARD_WORD.search(request["text"]):
        tenant, conversation = quote(request["tenant"], safe=""), quote(request["conversation_id"], safe="")
        url = f"{COACH_URL}/{tenant}/conversations/{conversation}"
        answer["card"] = {
            "type": "AdaptiveCard", "version": "1.5", "$schema": CARD_SCHEMA,
            "body": [{"type": "TextBlock", "text": f"Here is a card about: {said}", "wrap": True}],
            "actions": [{"type": "Action.OpenUrl", "title": "Open the coach", "url": url}],
        }
    return answer


def is_slow(text: str) -> bool:
    return _SLOW_WORD.search(text) is not None


def _error_code(status: int) -> str:
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = f"status {status}"
    return re.sub(r"[^a-z0-9]+", "_", phrase.lower()).strip("_")


# --- the stand-in ----------------------------------------------------------------------------------------------


class ChatBackendStandIn(ServedOnAThread):
    """A tenant instance's chat endpoint on http://127.0.0.1; see the module docstring for what it answers."""

    thread_name = "chatbot stand-in"

    def __init__(self, *, client_id: str, secret: str, port: int = 0, delay: float = 0.0) -> None:
        self.client_id = client_id
        self.secret = secret
        self.port = port
        self.delay = delay
        self.base_url = f"http://127.0.0.1:{port}" if port else ""
        self.requests: list[dict[str, Any]] = []
        self.waits = 0
        self._turns: dict[tuple[str, str], _Turn] = {}
        self._faults: list[list[int]] = []  # [status, remaining], oldest first
        self._hangs: list[float] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._log_requests = False

    def _make_server(self) -> _Server:
        server = _Server(("127.0.0.1", self.port), _Handler)
        server.standin = self
        self.port = server.server_address[1]
        self._stopping.clear()
        return server

    def stop(self) -> None:
        self._stopping.set()  # a turn that waits answers now instead of holding its thread
        super().stop()

    @property
    def chat_url(self) -> str:
        return self.base_url + CHAT_PATH

    @property
    def turns_answered(self) -> int:
        """Distinct turns worked on (repeats not counted)."""
        with self._lock:
            return len(self._turns)

    def fail_next(self, status: int, count: int = 1) -> None:
        """Answer the next ``count`` authenticated, well-formed requests with ``status``."""
        if not 400 <= status <= 599:
            raise ValueError(f"fail_next wants an error status (400-599), not {status}")
        if count < 1:
            raise ValueError("count must be at least 1")
        with self._lock:
            self._faults.append([status, count])

    def hang_next(self, seconds: float) -> None:
        """Make the next new turn wait ``seconds`` (instead of ``delay``) before it is answered."""
        if seconds < 0:
            raise ValueError("seconds must not be negative")
        with self._lock:
            self._hangs.append(seconds)

    def reset(self) -> None:
        """Forget turns, faults, hangs and the log (``delay`` stays)."""
        with self._lock:
            self._turns.clear()
            self._faults.clear()
            self._hangs.clear()
            self.requests.clear()
            self.waits = 0

    # HTTP

    def _handle(self, method: str, target: str, headers: Mapping[str, str], body: bytes) -> _Answer:
        path = urlsplit(target).path
        if path.rstrip("/") != CHAT_PATH:
            return _Answer(404, {"error": "not_found"})
        if method != "POST":
            return _Answer(405, {"error": "method_not_allowed"}, {"Allow": "POST"})
        try:
            document: Any = json.loads(body)
        except ValueError:
            document = None
        entry: dict[str, Any] = {"body": document, "repeat": False, "status": None}
        with self._lock:
            self.requests.append(entry)
        answer = self._chat(headers, document, entry)
        entry["status"] = answer.status
        return answer

    def _chat(self, headers: Mapping[str, str], document: Any, entry: dict[str, Any]) -> _Answer:
        if not self._authorized(headers.get("Authorization")):
            return _Answer(401, {"error": "unauthorized"}, {"WWW-Authenticate": 'Basic realm="connect"'})
        if document is None:
            return _Answer(400, {"error": "invalid_request", "message": "the body is not JSON"})
        try:
            request = check_request(document)
        except ContractError as error:
            return _Answer(400, {"error": "invalid_request", "message": str(error)})
        key = (request["tenant"], request["turn_id"])
        with self._lock:
            if self._faults:
                fault = self._faults[0]
                fault[1] -= 1
                if fault[1] == 0:
                    self._faults.pop(0)
                status = fault[0]
                return _Answer(status, {"error": _error_code(status), "message": "failure injected by fail_next"})
            turn = self._turns.get(key)
            entry["repeat"] = turn is not None
            if turn is None:
                turn = self._turns[key] = _Turn()
                wait = self._hangs.pop(0) if self._hangs else self.delay
                if is_slow(request["text"]):
                    wait = max(wait, SLOW_SECONDS)
                if wait > 0:
                    self.waits += 1
            else:
                wait = None
        if wait is None:  # a repeat: the first answer, once there is one
            while not turn.done.wait(0.1):
                if self._stopping.is_set():
                    return _Answer(503, {"error": "service_unavailable", "message": "the stand-in is stopping"})
            assert turn.answer is not None
            return _Answer(200, turn.answer)
        if wait > 0:
            self._stopping.wait(wait)
        turn.answer = coach_answer(request)
        turn.done.set()
        return _Answer(200, turn.answer)

    def _authorized(self, header: str | None) -> bool:
        scheme, _, credentials = (header or "").strip().partition(" ")
        if scheme.lower() != "basic" or not credentials.strip():
            return False
        try:
            decoded = base64.b64decode(credentials.strip(), validate=True)
        except (binascii.Error, ValueError):
            return False
        client_id, separator, secret = decoded.partition(b":")
        # Both compared, always: how long a refusal takes says nothing about which part was wrong.
        id_ok = hmac.compare_digest(client_id, self.client_id.encode())
        secret_ok = hmac.compare_digest(secret, self.secret.encode())
        return bool(separator) and id_ok and secret_ok


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    standin: ChatBackendStandIn


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"  # keep-alive, as the caller's pooled client expects
    # Headers and body go out as two writes: without TCP_NODELAY, Nagle holds the body back until the
    # client's delayed ACK (40 ms) on a kept-alive connection.
    disable_nagle_algorithm = True
    timeout = 30  # idle keep-alive connections end instead of holding a thread

    def _dispatch(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        try:
            answer = self.server.standin._handle(self.command, self.path, self.headers, body)
        except Exception:  # a bug of the stand-in: answer and keep serving
            import traceback

            traceback.print_exc()
            answer = _Answer(500, {"error": "internal_error"})
        write_answer(self, answer.status, "application/json", json.dumps(answer.payload).encode(), answer.headers)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _dispatch

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.standin._log_requests:
            sys.stderr.write(f"chatbot stand-in: {format % args}\n")


# --- command line ----------------------------------------------------------------------------------------------


def _serve(args: argparse.Namespace) -> int:
    secret = os.environ.get(args.secret_env, "")
    if not secret:
        print(f"error: the environment variable {args.secret_env} (--secret-env) is not set or empty",
              file=sys.stderr)
        return 2
    if args.delay < 0:
        print("error: --delay must not be negative", file=sys.stderr)
        return 2
    standin = ChatBackendStandIn(client_id=args.client_id, secret=secret, port=args.port, delay=args.delay)
    standin._log_requests = args.verbose
    return serve_in_foreground(standin, args.port,
                               f"chatbot stand-in on {{base_url}}{CHAT_PATH} for client {args.client_id} "
                               f"(delay {args.delay:g} s); Ctrl-C stops it")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m local.chatbot",
                                     description="Local stand-in of a tenant instance's chatbot backend")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve the stand-in until Ctrl-C")
    serve.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port to listen on (default {DEFAULT_PORT})")
    serve.add_argument("--client-id", required=True, help="the instance app's client id (HTTP Basic user)")
    serve.add_argument("--secret-env", required=True, metavar="NAME",
                       help="the environment variable that holds the secret (HTTP Basic password)")
    serve.add_argument("--delay", type=float, default=0.0, help="seconds every new turn waits (default 0)")
    serve.add_argument("--verbose", action="store_true", help="log every request to stderr")
    serve.set_defaults(run=_serve)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
