"""What the HRMS stand-ins (local/personio.py, bamboohr.py, hibob.py, merge.py) share: the faults and the rate
limit, the request path around the vendor's API, the common control endpoints, the HTTP plumbing and the ``serve``
command line. What a vendor decides stays in its stand-in: the error bodies, authentication, where in a request
faults and the limit apply and which requests the limit counts, its own control endpoints and options.

- ``FaultPlan`` (thread-safe) holds the pending faults, drops and the per-minute limit. ``fail_next``,
  ``drop_next``, ``limit_rate`` and ``clear`` arm it; a request asks, at the points its vendor applies them,
  ``take_drop()`` (read the request, then close without an answer), ``take_fault(where)`` (the next fault whose
  ``path_contains`` is in ``where``, one of its count spent: a ``Fault`` with the status and Retry-After, or
  None) and ``admit(key)`` (counts the request in ``key``'s sliding minute: a ``Throttle``, or None while no limit
  is set). A ``count`` or ``per_minute`` below 1 -> ValueError; which statuses a fault may carry is the
  stand-in's call. ``RateWindow`` is the sliding minute itself (not locked), for limits of a stand-in's own.
- ``HrmsStandIn`` (a ``ServedOnAThread``): a subclass calls ``super().__init__(port=...)``, sets ``workforce``
  (or serves it as a property) and implements ``_api_answer`` (its vendor's ``Answer`` to an API request) and
  ``_failure_answer`` (its 500 when the stand-in itself fails); it may override ``_control_reply``,
  ``_control_extra`` and the ``control_*`` wordings. It gets ``requests_log`` / ``requests_count``,
  ``fail_next`` (a status HTTP does not know -> ValueError) / ``drop_next`` / ``limit_rate`` / ``clear_faults``,
  ``change`` / ``depart`` / ``hire`` on ``workforce``, and the request path: ``/_standin`` and below go to the
  control endpoints (never faulted, throttled or logged); any other request is dropped while a drop is pending
  (logged with status 0) or answered by ``_api_answer`` (logged with its status). The log holds ``(method, path
  with query, status)``. Served by a ThreadingHTTPServer: HTTP/1.1 keep-alive, one thread per connection.
- Control endpoints (JSON bodies): ``GET requests`` -> ``{"requests": [[method, path, status], ...]}``;
  ``DELETE fail`` (clear_faults) -> ``{"pending": 0}``; ``POST fail`` {status, count?, retry_after?,
  path_contains?} -> ``{"pending": <faulted requests to come>}``; ``POST drop`` {count?} -> ``{"pending"}``;
  ``POST rate`` {per_minute: n | null} -> ``{"per_minute"}``; ``POST change`` / ``depart`` {indexes} ->
  ``{<route>: indexes}``; ``POST hire`` {count} -> 201 ``{"indexes"}``; then the stand-in's own
  (``_control_extra``). A body that is not a JSON object, or a missing or malformed field -> 400; another method
  or route -> 404 (``{"error": ...}`` both). ``_control_reply`` words the successful answers.
- ``command_line`` makes the ``serve`` command (``--port``, the Workforce's ``--employees``, ``--domain`` and
  ``--seed``, ``--verbose``; the stand-in adds its own options), ``serve_standin`` serves until Ctrl-C,
  ``run_command`` is a ``main``; ``EnvCredential`` reads a two-field JSON credential from the environment
  variable ``--credential-env`` names (never from argv).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar
from urllib.parse import urlsplit

from local.hrms_people import Workforce
from local.serving import ServedOnAThread, serve_in_foreground, write_answer

CONTROL_PREFIX = "/_standin"
WINDOW_SECONDS = 60.0


# --- answers ------------------------------------------------------------------------------------------------------


@dataclass
class Answer:
    """One HTTP answer; the request path returns None instead to close the connection without one."""

    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, status: int, payload: Any, headers: Mapping[str, str] | None = None) -> Answer:
        return cls(status, json.dumps(payload).encode(), "application/json", dict(headers or {}))


# --- faults and the rate limit ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Fault:
    """What an injected fault answers: ``status``, with ``Retry-After`` only when ``retry_after`` is given."""

    status: int
    retry_after: float | None

    def retry_after_headers(self) -> dict[str, str]:
        """``Retry-After`` as given (whole seconds without a fraction), or nothing."""
        if self.retry_after is None:
            return {}
        seconds = self.retry_after
        return {"Retry-After": str(int(seconds)) if float(seconds).is_integer() else f"{seconds:g}"}


@dataclass
class _PendingFault:
    fault: Fault
    remaining: int
    path_contains: str | None


@dataclass(frozen=True)
class Throttle:
    """What the rate limit made of one request."""

    admitted: bool
    limit: int  # a minute
    counted: int  # the requests of the window (this one too when admitted)
    reset_in: float  # seconds until the oldest of them leaves the window

    @property
    def wait(self) -> int:
        """Whole seconds, at least 1, until the window has room again: a ``Retry-After``."""
        return max(1, math.ceil(self.reset_in))


class RateWindow:
    """At most ``per_minute`` events in any 60 s (a sliding window). Not locked: its owner's lock guards it."""

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self._times: deque[float] = deque()  # monotonic times of the admitted events of the last minute

    def __len__(self) -> int:
        return len(self._times)

    def admit(self, now: float) -> bool:
        """Count an event at ``now`` (monotonic seconds) if the window has room; whether it had."""
        while self._times and self._times[0] <= now - WINDOW_SECONDS:
            self._times.popleft()
        if len(self._times) >= self.per_minute:
            return False
        self._times.append(now)
        return True

    def reset_in(self, now: float) -> float:
        """Seconds until the oldest event leaves the window (a whole window when there is none)."""
        return self._times[0] + WINDOW_SECONDS - now if self._times else WINDOW_SECONDS


class FaultPlan:
    """The faults, drops and rate limit armed for a stand-in's API requests; safe to use from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[_PendingFault] = []
        self._drops = 0
        self._per_minute: int | None = None
        self._windows: dict[Hashable, RateWindow] = {}  # one per key of admit()

    def fail_next(self, status: int, *, count: int = 1, retry_after: float | None = None,
                  path_contains: str | None = None) -> None:
        """Fault the next ``count`` requests whose ``where`` (see ``take_fault``) contains ``path_contains``."""
        if count < 1:
            raise ValueError("count must be at least 1")
        with self._lock:
            self._faults.append(_PendingFault(Fault(status, retry_after), count, path_contains))

    def drop_next(self, count: int = 1) -> None:
        """Read the next ``count`` requests, then close their connections without an answer."""
        if count < 1:
            raise ValueError("count must be at least 1")
        with self._lock:
            self._drops += count

    def limit_rate(self, per_minute: int | None) -> None:
        """Admit at most ``per_minute`` requests of a key within the last minute; None lifts the limit."""
        if per_minute is not None and per_minute < 1:
            raise ValueError("per_minute must be at least 1 (or None)")
        with self._lock:
            self._per_minute = per_minute
            self._windows.clear()

    def clear(self) -> None:
        """Forget pending faults and drops and lift the rate limit."""
        with self._lock:
            self._faults.clear()
            self._drops = 0
            self._per_minute = None
            self._windows.clear()

    @property
    def pending_faults(self) -> int:
        """How many requests the pending faults will still answer."""
        with self._lock:
            return sum(pending.remaining for pending in self._faults)

    @property
    def pending_drops(self) -> int:
        with self._lock:
            return self._drops

    # the request path

    def take_drop(self) -> bool:
        """Whether this request is dropped (one pending drop spent)."""
        with self._lock:
            if self._drops > 0:
                self._drops -= 1
                return True
            return False

    def take_fault(self, where: str) -> Fault | None:
        """The first pending fault matching ``where`` (a path, or a path with query), one of its count spent."""
        with self._lock:
            for pending in self._faults:
                if pending.path_contains is None or pending.path_contains in where:
                    pending.remaining -= 1
                    if pending.remaining <= 0:
                        self._faults.remove(pending)
                    return pending.fault
            return None

    def admit(self, key: Hashable = None) -> Throttle | None:
        """Count this request against ``key``'s window: the ``Throttle``, or None while no limit is set."""
        with self._lock:
            limit = self._per_minute
            if limit is None:
                return None
            now = time.monotonic()
            window = self._windows.get(key)
            if window is None:
                window = self._windows[key] = RateWindow(limit)
            admitted = window.admit(now)
            return Throttle(admitted, limit, len(window), window.reset_in(now))


# --- the stand-in -------------------------------------------------------------------------------------------------


class HrmsStandIn(ServedOnAThread):
    """The request path, faults, log and control endpoints of an HRMS stand-in; see the module docstring."""

    log_name: ClassVar[str] = "hrms stand-in"  # what --verbose's lines start with
    # How the control endpoints word their refusals ({} is the reason of a 400).
    control_not_found: ClassVar[str] = "not_found"
    control_not_an_object: ClassVar[str] = "the body must be a JSON object"
    control_malformed: ClassVar[str] = "missing or malformed field: {}"
    workforce: Workforce

    def __init__(self, *, port: int) -> None:
        self.port = port
        self.requests_log: list[tuple[str, str, int]] = []
        self._lock = threading.RLock()
        self._plan = FaultPlan()
        self._log_requests = False

    def _make_server(self) -> ThreadingHTTPServer:
        server = _Server(("127.0.0.1", self.port), _Handler)
        server.standin = self
        return server

    @property
    def requests_count(self) -> int:
        with self._lock:
            return len(self.requests_log)

    # faults and limits

    def fail_next(self, status: int, *, count: int = 1, retry_after: float | None = None,
                  path_contains: str | None = None) -> None:
        """Answer the next ``count`` API requests (whose path contains ``path_contains``) with ``status``."""
        HTTPStatus(status)  # a ValueError for a status that does not exist
        self._plan.fail_next(status, count=count, retry_after=retry_after, path_contains=path_contains)

    def drop_next(self, count: int = 1) -> None:
        """Read the next ``count`` API requests, then close their connections without an answer."""
        self._plan.drop_next(count)

    def limit_rate(self, per_minute: int | None) -> None:
        """Refuse API requests beyond ``per_minute`` within the last minute; None lifts the limit."""
        self._plan.limit_rate(per_minute)

    def clear_faults(self) -> None:
        """Forget pending faults and drops and lift the rate limit."""
        self._plan.clear()

    # the workforce, for tests and the control endpoints

    def change(self, indexes: Iterable[int]) -> None:
        self.workforce.change(list(indexes))

    def depart(self, indexes: Iterable[int]) -> None:
        self.workforce.depart(list(indexes))

    def hire(self, count: int) -> list[int]:
        return self.workforce.hire(count)

    # HTTP

    def _api_answer(self, method: str, target: str, headers: Mapping[str, str], body: bytes) -> Answer:
        """The vendor's answer to an API request (``target``: the path with query), once it is not dropped."""
        raise NotImplementedError

    def _failure_answer(self) -> Answer:
        """The vendor's 500, for a request the stand-in itself failed on."""
        raise NotImplementedError

    def _handle(self, method: str, target: str, headers: Mapping[str, str], body: bytes) -> Answer | None:
        path = urlsplit(target).path
        if path == CONTROL_PREFIX or path.startswith(CONTROL_PREFIX + "/"):
            return self._control(method, path.removeprefix(CONTROL_PREFIX).strip("/"), body)
        answer = None if self._plan.take_drop() else self._api_answer(method, target, headers, body)
        with self._lock:
            self.requests_log.append((method, target, 0 if answer is None else answer.status))
        return answer

    # control endpoints

    def _control(self, method: str, route: str, body: bytes) -> Answer:
        if method == "GET" and route == "requests":
            with self._lock:
                return Answer.json(200, {"requests": [list(entry) for entry in self.requests_log]})
        if method == "DELETE" and route == "fail":
            self.clear_faults()
            return self._control_reply(route, {"pending": 0})
        if method != "POST":
            return Answer.json(404, {"error": self.control_not_found})
        try:
            document = json.loads(body or b"{}")
            if not isinstance(document, dict):
                return Answer.json(400, {"error": self.control_not_an_object})
            answer = self._control_post(route, document)
        except (KeyError, TypeError, ValueError) as error:
            return Answer.json(400, {"error": self.control_malformed.format(error)})
        return Answer.json(404, {"error": self.control_not_found}) if answer is None else answer

    def _control_post(self, route: str, document: dict[str, Any]) -> Answer | None:
        if route == "fail":
            retry_after = document.get("retry_after")
            self.fail_next(int(document["status"]), count=int(document.get("count", 1)),
                           retry_after=None if retry_after is None else float(retry_after),
                           path_contains=document.get("path_contains"))
            return self._control_reply(route, {"pending": self._plan.pending_faults})
        if route == "drop":
            self.drop_next(int(document.get("count", 1)))
            return self._control_reply(route, {"pending": self._plan.pending_drops})
        if route == "rate":
            per_minute = document["per_minute"]
            self.limit_rate(None if per_minute is None else int(per_minute))
            return self._control_reply(route, {"per_minute": per_minute})
        if route in ("change", "depart"):
            indexes = [int(index) for index in document["indexes"]]
            (self.change if route == "change" else self.depart)(indexes)
            return self._control_reply(route, {route: indexes})
        if route == "hire":
            return self._control_reply(route, {"indexes": self.hire(int(document["count"]))})
        return self._control_extra(route, document)

    def _control_reply(self, route: str, reply: dict[str, Any]) -> Answer:
        """The answer of a common control endpoint that did its work (``reply`` as the module docstring says)."""
        return Answer.json(201 if route == "hire" else 200, reply)

    def _control_extra(self, route: str, document: dict[str, Any]) -> Answer | None:
        """The stand-in's own ``POST /_standin/<route>``; None: there is none (404)."""
        return None


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    standin: HrmsStandIn


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"  # keep-alive, as pooled clients (httpx) expect
    # Headers and body go out as two writes: without TCP_NODELAY, Nagle holds the body back until the
    # client's delayed ACK (40 ms) on a kept-alive connection.
    disable_nagle_algorithm = True
    timeout = 30  # idle keep-alive connections end instead of holding a thread

    def _dispatch(self) -> None:
        standin = self.server.standin
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        try:
            answer = standin._handle(self.command, self.path, self.headers, body)
        except Exception:  # a bug of the stand-in: answer as the vendor's server would and keep serving
            traceback.print_exc()
            answer = standin._failure_answer()
        if answer is None:  # a drop: the request was read; the connection ends without an answer
            self.close_connection = True
            return
        write_answer(self, answer.status, answer.content_type, answer.body, answer.headers)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _dispatch

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.standin._log_requests:
            sys.stderr.write(f"{self.server.standin.log_name}: {format % args}\n")


# --- command line -------------------------------------------------------------------------------------------------


def command_line(prog: str, description: str, *, port: int, employees: int, seed: bool = True,
                 serve: Callable[[argparse.Namespace], int]) -> tuple[argparse.ArgumentParser, argparse.ArgumentParser]:
    """The parser and its ``serve`` command, for ``run_command``: ``--port``, the Workforce's ``--employees``,
    ``--domain`` and (with ``seed``) ``--seed``, and ``--verbose``; the stand-in adds its own options."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    commands = parser.add_subparsers(dest="command", required=True)
    command = commands.add_parser("serve", help="serve the stand-in until Ctrl-C")
    command.add_argument("--port", type=int, default=port)
    command.add_argument("--employees", type=int, default=employees, help="how many employees the Workforce holds")
    command.add_argument("--domain", default="example.com", help="the employees' email domain")
    if seed:
        command.add_argument("--seed", type=int, default=7, help="the Workforce's seed")
    command.add_argument("--verbose", action="store_true", help="log every request to stderr")
    command.set_defaults(run=serve)
    return parser, command


@dataclass(frozen=True)
class EnvCredential:
    """A two-field JSON credential (the connector's) that ``serve`` reads from an environment variable, never from
    argv: ``--credential-env`` names the variable (default ``variable``); unset or blank, ``defaults`` serve."""

    variable: str
    keys: tuple[str, str]
    defaults: tuple[str, str]

    def add_option(self, command: argparse.ArgumentParser) -> None:
        first, second = self.keys
        command.add_argument("--credential-env", default=self.variable,
                             help=f'environment variable holding {{"{first}", "{second}"}} (default: '
                                  f"{self.variable}; unset: the stand-in's defaults)")

    def read(self, variable: str) -> tuple[str, str]:
        """The two non-empty strings of the JSON object in ``variable``; ValueError when it holds anything else."""
        raw = os.environ.get(variable, "").strip()
        if not raw:
            return self.defaults
        document = json.loads(raw)
        first, second = self.keys
        if not isinstance(document, dict) or not all(isinstance(document.get(key), str) and document[key]
                                                      for key in self.keys):
            raise ValueError(f"${variable} must be a JSON object with {first} and {second}")
        return document[first], document[second]


def serve_standin(standin: HrmsStandIn, args: argparse.Namespace, banner: str) -> int:
    """Serve until Ctrl-C on ``args.port``, logging requests with ``--verbose``; ``banner`` as serve_in_foreground's."""
    standin._log_requests = args.verbose
    return serve_in_foreground(standin, args.port, banner)


def run_command(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> int:
    args = parser.parse_args(argv)
    return args.run(args)
