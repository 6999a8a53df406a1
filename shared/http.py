"""The one outbound HTTP client policy: every connector (HRMS, Thinkific, WorkOS calls we make
ourselves) builds its client here.

Contract (tests/shared/test_http.py):
- timeouts: 5 s to connect, 30 s to read (per client);
- retries: a 429 is retried for any method; a 502, 503, 504 or a connection failure only for
  idempotent methods (GET, HEAD, OPTIONS, PUT, DELETE) or a request marked ``idempotent=True``
  (it carries an idempotency key); at most ``max_attempts`` attempts in all;
- waits: ``Retry-After`` (seconds or an HTTP date) when the server sends it, otherwise exponential
  backoff with full jitter (0.5 s doubling, capped at 30 s); a Retry-After longer than
  ``max_retry_after`` (60 s) is not waited out: ``RetryLater`` is raised at once with the wait, so
  a queue message can come back later instead of holding an instance;
- when retries run out, ``OutboundError`` carries the service, the last status and ``retryable``;
  other responses (2xx-4xx) are returned for the caller to interpret;
- pacing: a client made with ``requests_per_minute`` spaces its requests to a host at least
  60/N seconds apart, across every client of that host in this process (each instance paces
  itself; the limit is a vendor's documented per-minute limit, divided as the caller sees fit);
- a clear user agent: ``EnterpriseConnections/<version>``;
- SSRF guard: only https, and every connection goes to an address checked when the socket is
  opened (so a DNS answer that changes between check and use cannot slip through): never a
  private, loopback, link-local, shared, multicast, reserved or unspecified address. Hosts listed
  in OUTBOUND_ALLOWED_LOCAL_HOSTS (the local stand-ins) are exempt, over http too; the list is
  empty in Azure. Redirects are not followed.
"""

from __future__ import annotations

import email.utils
import ipaddress
import random
import socket
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import httpcore
import httpx

from shared import __version__, config

USER_AGENT = f"EnterpriseConnections/{__version__} (integration service)"
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
RETRY_ALWAYS = frozenset({429})
RETRY_IF_IDEMPOTENT = frozenset({502, 503, 504})
BACKOFF_BASE_SECONDS = 0.5
BACKOFF_CAP_SECONDS = 30.0


class OutboundError(Exception):
    """A call to another service failed; ``retryable`` says whether trying later can help."""

    def __init__(self, service: str, message: str, *, status: int | None = None, retryable: bool,
                 retry_after: float | None = None) -> None:
        super().__init__(f"{service}: {message}")
        self.service = service
        self.status = status
        self.retryable = retryable
        self.retry_after = retry_after


class BlockedDestination(OutboundError):
    """The URL or the address it resolves to is one this service must never call."""

    def __init__(self, service: str, message: str) -> None:
        super().__init__(service, message, retryable=False)


class RetryLater(OutboundError):
    """The service asked for a longer pause than is worth waiting out here."""


# --- SSRF guard --------------------------------------------------------------------------------------


def address_is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not (ip.is_multicast or ip.is_reserved or ip.is_unspecified)


class _GuardedBackend(httpcore.SyncBackend):
    """Opens sockets only to public addresses (or to the exempt local hosts)."""

    def __init__(self, service: str, exempt_hosts: frozenset[str]) -> None:
        self.service = service
        self.exempt_hosts = exempt_hosts

    def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                    socket_options: Iterable[Any] | None = None) -> httpcore.NetworkStream:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except socket.gaierror as error:
            raise httpcore.ConnectError(f"cannot resolve {host}: {error}") from error
        addresses = list(dict.fromkeys(info[4][0] for info in infos))
        if host.lower() not in self.exempt_hosts:
            blocked = [address for address in addresses if not address_is_public(address)]
            if blocked:
                raise BlockedDestination(self.service, f"{host} resolves to a non-public address ({blocked[0]})")
        last_error: Exception | None = None
        for address in addresses:
            try:
                return super().connect_tcp(address, port, timeout, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as error:
                last_error = error
        raise last_error or httpcore.ConnectError(f"no address for {host}")


class _GuardedTransport(httpx.HTTPTransport):
    def __init__(self, service: str, exempt_hosts: frozenset[str]) -> None:
        super().__init__(trust_env=False)
        # httpx builds its connection pool without a way to pass a network backend; build it again
        # with the guard in place (the pool is the transport's only I/O path).
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=True),
            max_connections=20,
            max_keepalive_connections=10,
            keepalive_expiry=30.0,
            network_backend=_GuardedBackend(service, exempt_hosts),
        )


# --- pacing ----------------------------------------------------------------------------------------


class _Pacer:
    """Earliest next request time per host, shared by every client in the process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._next: dict[str, float] = {}

    def wait_turn(self, host: str, interval: float, clock: Callable[[], float],
                  sleep: Callable[[float], None]) -> None:
        with self._lock:
            now = clock()
            start = max(now, self._next.get(host, now))
            self._next[host] = start + interval
        if start > now:
            sleep(start - now)

    def reset(self) -> None:
        with self._lock:
            self._next.clear()


PACER = _Pacer()


# --- the client --------------------------------------------------------------------------------------


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delay-seconds or HTTP-date), or None."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, (moment - (now or datetime.now(UTC))).total_seconds())


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 4
    max_retry_after: float = 60.0
    backoff_base: float = BACKOFF_BASE_SECONDS
    backoff_cap: float = BACKOFF_CAP_SECONDS
    backoff_minimum: float = 0.0  # a vendor that sends no Retry-After but asks for at least this long

    def backoff(self, attempt: int) -> float:
        """Full jitter: a random wait up to base * 2^(attempt-1), capped, and at least the minimum."""
        return max(self.backoff_minimum,
                   random.uniform(0, min(self.backoff_cap, self.backoff_base * 2 ** (attempt - 1))))


def guarded_httpx_client(service: str, *, connect_timeout: float = 5.0, read_timeout: float = 30.0) -> httpx.Client:
    """A plain httpx client with this module's SSRF guard, timeouts, user agent and no redirects, for
    a vendor SDK that sends and retries by itself (the workos SDK takes one as ``http_client``)."""
    return httpx.Client(
        headers={"User-Agent": USER_AGENT},
        timeout=httpx.Timeout(read_timeout, connect=connect_timeout),
        transport=_GuardedTransport(service, config.outbound_allowed_local_hosts()),
        follow_redirects=False,
        trust_env=False,
    )


class OutboundClient:
    """An HTTP client for one service, with the policy above. Use as a context manager or close()."""

    def __init__(
        self,
        service: str,
        *,
        base_url: str = "",
        headers: dict[str, str] | None = None,
        requests_per_minute: int | None = None,
        retry: RetryPolicy = RetryPolicy(),
        connect_timeout: float = 5.0,
        read_timeout: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.service = service
        self.retry = retry
        self.interval = 60.0 / requests_per_minute if requests_per_minute else 0.0
        self.clock = clock
        self.sleep = sleep
        self.exempt_hosts = config.outbound_allowed_local_hosts()
        if base_url:
            self._check_url(base_url)
        self._client = httpx.Client(
            base_url=base_url,
            headers={"User-Agent": USER_AGENT, **(headers or {})},
            timeout=httpx.Timeout(read_timeout, connect=connect_timeout),
            transport=_GuardedTransport(service, self.exempt_hosts),
            follow_redirects=False,
            trust_env=False,
        )

    def _check_url(self, url: str) -> None:
        parts = urlsplit(str(url))
        host = (parts.hostname or "").lower()
        if parts.scheme == "https" and host:
            return
        if parts.scheme == "http" and host in self.exempt_hosts:
            return
        raise BlockedDestination(self.service, f"only https:// URLs may be called, not {parts.scheme or '?'}://{host}")

    def request(self, method: str, url: str, *, idempotent: bool | None = None, **kwargs: Any) -> httpx.Response:
        """Send with retries as the contract says; returns any response that is not retried."""
        method = method.upper()
        full_url = self._client.build_request(method, url).url
        self._check_url(str(full_url))
        may_retry_failures = method in IDEMPOTENT_METHODS if idempotent is None else idempotent
        for attempt in range(1, self.retry.max_attempts + 1):
            if self.interval:
                PACER.wait_turn(full_url.host, self.interval, self.clock, self.sleep)
            last = attempt == self.retry.max_attempts
            try:
                response = self._client.request(method, url, **kwargs)
            except BlockedDestination:
                raise
            except httpx.TransportError as error:
                if not may_retry_failures or last:
                    raise OutboundError(self.service, f"{method} {full_url.path}: {type(error).__name__}",
                                        retryable=True) from error
                self.sleep(self.retry.backoff(attempt))
                continue
            status = response.status_code
            if status not in RETRY_ALWAYS and not (status in RETRY_IF_IDEMPOTENT and may_retry_failures):
                return response
            wait = parse_retry_after(response.headers.get("Retry-After"))
            if wait is not None and wait > self.retry.max_retry_after:
                raise RetryLater(self.service, f"{method} {full_url.path}: {status}, retry after {wait:.0f} s",
                                 status=status, retryable=True, retry_after=wait)
            if last:
                raise OutboundError(self.service, f"{method} {full_url.path}: {status} after {attempt} attempts",
                                    status=status, retryable=True, retry_after=wait)
            self.sleep(wait if wait is not None else self.retry.backoff(attempt))
        raise AssertionError("unreachable: the loop returns or raises")  # pragma: no cover

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", url, **kwargs)

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> OutboundClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
