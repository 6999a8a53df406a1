"""HRMS sync runs: requested, leased, checkpointed, finished; the history ops and admins read. Plain SQL.

Contract (tests/hrms/test_engine.py, tests/hrms/test_runs.py):
- ``request_run`` records a run and returns it with ``created``; a tenant has at most one unfinished run
  (a unique index): asking while one is queued or running returns that one, created False, whoever asks
  and however many instances ask at once. An incremental request becomes a full run when the tenant has
  no successful run yet or its HRMS cannot sync incrementally; it asks for the changes since the start of
  the last successful run, minus ``INCREMENTAL_OVERLAP`` (clocks differ, and a change being written as a
  run starts must not slip between two runs);
- ``claim`` gives the run's lease to one worker (``LEASE_SECONDS``, renewed with every checkpoint): a
  worker whose claim fails learns when the holder's lease ends;
- ``checkpoint`` adds a page's counts and moves the cursor, only while the worker still holds the lease
  (False otherwise: another worker took over, and this one stops);
- ``finish`` and ``fail`` end a run; ``record_error`` keeps the last error of a failing attempt (the queue
  retries it) and frees the lease at once for the next attempt.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import psycopg
from psycopg.rows import dict_row

LEASE_SECONDS = 300
INCREMENTAL_OVERLAP = timedelta(minutes=5)
COUNTS = ("seen", "created", "updated", "departed", "unmatched", "errors")


@dataclass(frozen=True)
class Run:
    id: str
    tenant_id: str
    mode: str
    status: str
    requested_by: str
    changed_since: datetime | None
    cursor: str | None
    pages: int
    counts: dict[str, int]
    last_error: str | None
    failure_reason: str | None
    queued_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    created: bool = False

    def as_dict(self) -> dict[str, Any]:
        seconds = (self.finished_at - self.started_at).total_seconds() if self.finished_at and self.started_at \
            else None
        return {
            "run_id": self.id, "mode": self.mode, "status": self.status, "requested_by": self.requested_by,
            "changed_since": self.changed_since.isoformat() if self.changed_since else None,
            "pages": self.pages, **self.counts, "last_error": self.last_error,
            "failure_reason": self.failure_reason, "queued_at": self.queued_at.isoformat(),
            "started_at": self.started_at.isoformat() if self.started_at else None,
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "duration_seconds": round(seconds, 3) if seconds is not None else None,
        }


def _run(row: dict[str, Any], *, created: bool = False) -> Run:
    return Run(str(row["id"]), str(row["tenant_id"]), row["mode"], row["status"], row["requested_by"],
               row["changed_since"], row["cursor"], row["pages"], {name: row[name] for name in COUNTS},
               row["last_error"], row["failure_reason"], row["queued_at"], row["started_at"], row["finished_at"],
               created)


def get_run(conn: psycopg.Connection, tenant_id: str, run_id: str) -> Run | None:
    row = conn.cursor(row_factory=dict_row).execute(
        "SELECT * FROM hrms_runs WHERE tenant_id = %s AND id = %s", [tenant_id, run_id]).fetchone()
    return _run(row) if row else None


def list_runs(conn: psycopg.Connection, tenant_id: str, *, limit: int = 20) -> list[Run]:
    rows = conn.cursor(row_factory=dict_row).execute(
        "SELECT * FROM hrms_runs WHERE tenant_id = %s ORDER BY queued_at DESC LIMIT %s",
        [tenant_id, limit]).fetchall()
    return [_run(row) for row in rows]


def request_run(conn: psycopg.Connection, tenant_id: str, mode: str, *, requested_by: str,
                incremental_possible: bool = True) -> Run:
    """The tenant's new run, or the unfinished one it already has (created False)."""
    if mode not in ("full", "incremental"):
        raise ValueError("mode must be full or incremental")
    since = None
    if mode == "incremental":
        last = conn.execute("SELECT max(started_at) FROM hrms_runs WHERE tenant_id = %s AND status = 'succeeded'",
                            [tenant_id]).fetchone()[0]
        if last is None or not incremental_possible:
            mode = "full"
        else:
            since = last - INCREMENTAL_OVERLAP
    row = conn.cursor(row_factory=dict_row).execute(
        "INSERT INTO hrms_runs (id, tenant_id, mode, requested_by, changed_since) VALUES (%s, %s, %s, %s, %s)"
        " ON CONFLICT (tenant_id) WHERE status IN ('queued', 'running') DO NOTHING RETURNING *",
        [str(uuid.uuid4()), tenant_id, mode, requested_by, since]).fetchone()
    if row is not None:
        return _run(row, created=True)
    existing = conn.cursor(row_factory=dict_row).execute(
        "SELECT * FROM hrms_runs WHERE tenant_id = %s AND status IN ('queued', 'running')",
        [tenant_id]).fetchone()
    return _run(existing)


@dataclass(frozen=True)
class Claim:
    run: Run | None  # the run, when this worker holds its lease
    finished: bool  # the run is over (or unknown): nothing to do
    held_for_seconds: float  # another worker holds the lease for this long


def claim(conn: psycopg.Connection, tenant_id: str, run_id: str, holder: str) -> Claim:
    row = conn.cursor(row_factory=dict_row).execute(
        "UPDATE hrms_runs SET status = 'running', started_at = coalesce(started_at, now()), lease_holder = %s,"
        " lease_expires_at = now() + make_interval(secs => %s) WHERE tenant_id = %s AND id = %s"
        " AND status IN ('queued', 'running') AND (lease_expires_at IS NULL OR lease_expires_at < now()"
        " OR lease_holder = %s) RETURNING *", [holder, LEASE_SECONDS, tenant_id, run_id, holder]).fetchone()
    if row is not None:
        return Claim(_run(row), False, 0.0)
    other = conn.execute("SELECT status, extract(epoch FROM lease_expires_at - now()) FROM hrms_runs"
                         " WHERE tenant_id = %s AND id = %s", [tenant_id, run_id]).fetchone()
    if other is None or other[0] not in ("queued", "running"):
        return Claim(None, True, 0.0)
    return Claim(None, False, max(0.0, float(other[1] or 0.0)))


def checkpoint(conn: psycopg.Connection, run_id: str, holder: str, cursor: str | None,
               counts: dict[str, int]) -> bool:
    """Add a page's counts and move the cursor, while ``holder`` has the lease."""
    row = conn.execute(
        "UPDATE hrms_runs SET cursor = %s, pages = pages + 1, seen = seen + %s, created = created + %s,"
        " updated = updated + %s, unmatched = unmatched + %s, errors = errors + %s,"
        " lease_expires_at = now() + make_interval(secs => %s)"
        " WHERE id = %s AND lease_holder = %s AND status = 'running' RETURNING 1",
        [cursor, counts.get("seen", 0), counts.get("created", 0), counts.get("updated", 0),
         counts.get("unmatched", 0), counts.get("errors", 0), LEASE_SECONDS, run_id, holder]).fetchone()
    return row is not None


def release(conn: psycopg.Connection, run_id: str, holder: str) -> None:
    """Let the next message of this run go on at once (a time budget spent, an attempt that failed)."""
    conn.execute("UPDATE hrms_runs SET lease_holder = NULL, lease_expires_at = NULL WHERE id = %s"
                 " AND lease_holder = %s", [run_id, holder])


def record_error(conn: psycopg.Connection, run_id: str, holder: str, error: str) -> None:
    conn.execute("UPDATE hrms_runs SET last_error = %s, lease_holder = NULL, lease_expires_at = NULL WHERE id = %s"
                 " AND (lease_holder = %s OR lease_holder IS NULL)", [error[:1000], run_id, holder])


def finish(conn: psycopg.Connection, run_id: str, holder: str, *, departed: int) -> bool:
    row = conn.execute(
        "UPDATE hrms_runs SET status = 'succeeded', departed = %s, finished_at = now(), cursor = NULL,"
        " lease_holder = NULL, lease_expires_at = NULL WHERE id = %s AND lease_holder = %s AND status = 'running'"
        " RETURNING 1", [departed, run_id, holder]).fetchone()
    return row is not None


def fail(conn: psycopg.Connection, tenant_id: str, run_id: str, reason: str) -> Run | None:
    """End an unfinished run as failed with its reason; None when it was already over."""
    row = conn.cursor(row_factory=dict_row).execute(
        "UPDATE hrms_runs SET status = 'failed', failure_reason = %s, finished_at = now(), lease_holder = NULL,"
        " lease_expires_at = NULL WHERE tenant_id = %s AND id = %s AND status IN ('queued', 'running')"
        " RETURNING *", [reason[:2000], tenant_id, run_id]).fetchone()
    return _run(row) if row else None


def last_full_success(conn: psycopg.Connection, tenant_id: str) -> datetime | None:
    return conn.execute("SELECT max(started_at) FROM hrms_runs WHERE tenant_id = %s AND status = 'succeeded'"
                        " AND mode = 'full'", [tenant_id]).fetchone()[0]


def last_queued(conn: psycopg.Connection, tenant_id: str) -> datetime | None:
    return conn.execute("SELECT max(queued_at) FROM hrms_runs WHERE tenant_id = %s", [tenant_id]).fetchone()[0]
