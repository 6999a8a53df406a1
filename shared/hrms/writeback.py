"""HRMS write-back: results tenant apps report (completions, assessments) written into the tenant's HRMS.

Contract (tests/hrms/test_writeback.py):
- ``parse_result`` validates a report ``{result_id, user, kind, title, completed_on, score?, hours?,
  credits?, details?}`` and names every bad field at once (InvalidResult);
- ``accept_result`` records it durably for the tenant's user (by id or email) and says whether to queue
  it: the same ``result_id`` with the same content is accepted again and not duplicated (nor queued again
  once written or failed); with other content it is a ResultConflict. A tenant whose write-back is off
  refuses results (WriteBackOff): nothing is recorded that would never be written;
- the ``hrms-writeback`` worker writes a queued result through the tenant's connector: it resolves the
  user's HRMS id from the read sync, asks the HRMS whether an earlier attempt already wrote it (a crash
  between the HRMS's write and our record is found again, not written twice), writes it otherwise and
  records the HRMS's own record id. A permanent refusal (no HRMS record for the user, the HRMS refusing the
  employee or a field) ends the result as failed with the reason; a long pause brings the message back
  later; anything else raises for the host to retry, and a message that reaches ``hrms-writeback-poison``
  fails its result and tells the tenant's admins;
- ``configure`` checks each configured target against the HRMS (the writer's ``check_target``) before the
  write-back mapping is saved; ``enabled`` is only accepted with a target for both kinds or the one given.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import uuid
from dataclasses import dataclass
from datetime import date
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from shared import config, db, queues
from shared.hrms.connectors import base
from shared.http import RetryLater
from shared.tenants.models import InvalidValue, Tenant

log = logging.getLogger(__name__)

_RESULT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
MAX_TITLE = 200
MAX_DETAILS_BYTES = 8_000
MAX_PAUSE_SECONDS = 3600


class InvalidResult(ValueError):
    def __init__(self, problems: dict[str, str]) -> None:
        super().__init__("; ".join(f"{name}: {problem}" for name, problem in problems.items()))
        self.problems = problems


class ResultConflict(Exception):
    pass


class WriteBackOff(Exception):
    pass


@dataclass(frozen=True)
class ResultReport:
    result: base.Result
    user: str

    def fingerprint(self) -> str:
        content = {"user": self.user.lower(), "kind": self.result.kind, "title": self.result.title,
                   "completed_on": self.result.completed_on, "score": self.result.score,
                   "hours": self.result.hours, "credits": self.result.credits, "details": self.result.details}
        return hashlib.sha256(json.dumps(content, sort_keys=True, default=str).encode()).hexdigest()


def _number(document: dict[str, Any], name: str, problems: dict[str, str], *, minimum: float | None = None
            ) -> float | None:
    value = document.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        problems[name] = "must be a number"
        return None
    if minimum is not None and value < minimum:
        problems[name] = f"must be at least {minimum:g}"
    return float(value)


def parse_result(document: Any) -> ResultReport:
    if not isinstance(document, dict):
        raise InvalidResult({"body": "must be a JSON object"})
    problems: dict[str, str] = {}
    result_id = document.get("result_id")
    if not isinstance(result_id, str) or not _RESULT_ID.fullmatch(result_id):
        problems["result_id"] = "must be 1-128 letters, digits, '.', '_', ':' or '-', starting with a letter or digit"
    user = document.get("user")
    if not isinstance(user, str) or not user.strip():
        problems["user"] = "is required: the user's id or email"
    kind = document.get("kind")
    if kind not in base.RESULT_KINDS:
        problems["kind"] = f"must be one of {', '.join(base.RESULT_KINDS)}"
    title = document.get("title")
    if not isinstance(title, str) or not title.strip() or len(title) > MAX_TITLE:
        problems["title"] = f"is required: 1-{MAX_TITLE} characters"
    completed_on = document.get("completed_on")
    try:
        completed = date.fromisoformat(completed_on) if isinstance(completed_on, str) and len(completed_on) == 10 \
            else None
    except ValueError:
        completed = None
    if completed is None:
        problems["completed_on"] = "is required: a date as YYYY-MM-DD"
    score = _number(document, "score", problems)
    hours = _number(document, "hours", problems, minimum=0)
    credits_ = _number(document, "credits", problems, minimum=0)
    details = document.get("details")
    if details is not None and (not isinstance(details, dict) or len(json.dumps(details)) > MAX_DETAILS_BYTES):
        problems["details"] = f"must be a JSON object of at most {MAX_DETAILS_BYTES} bytes"
    unknown = set(document) - {"result_id", "user", "kind", "title", "completed_on", "score", "hours", "credits",
                               "details"}
    if unknown:
        problems["body"] = f"unknown fields: {', '.join(sorted(unknown))}"
    if problems:
        raise InvalidResult(problems)
    return ResultReport(base.Result(result_id, kind, title.strip(), completed.isoformat(), score, hours, credits_,
                                    details), user.strip())


def _writeback(tenant: Tenant) -> dict[str, Any]:
    return tenant.hrms.writeback if tenant.hrms else {}


def accept_result(conn: psycopg.Connection, tenant: Tenant, app_id: str | None, report: ResultReport
                  ) -> tuple[dict[str, Any], bool]:
    """Record a result (or find it again); returns its status and whether to queue it."""
    from shared.identity.store import find_user

    if not _writeback(tenant).get("enabled"):
        raise WriteBackOff(f"writing results back to the HRMS is not turned on for tenant {tenant.slug!r}")
    user = find_user(conn, tenant, report.user)
    result = report.result
    fingerprint = report.fingerprint()
    db.use_tenant(conn, tenant.id)
    inserted = conn.execute(
        "INSERT INTO hrms_results (tenant_id, result_id, app_id, user_id, kind, title, completed_on, score, hours,"
        " credits, details, fingerprint) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
        " ON CONFLICT (tenant_id, result_id) DO NOTHING RETURNING 1",
        [tenant.id, result.result_id, app_id, user.id, result.kind, result.title, result.completed_on,
         result.score, result.hours, result.credits, Jsonb(result.details) if result.details else None,
         fingerprint]).fetchone()
    row = conn.execute("SELECT fingerprint, status FROM hrms_results WHERE tenant_id = %s AND result_id = %s",
                       [tenant.id, result.result_id]).fetchone()
    if inserted is None and row[0] != fingerprint:
        raise ResultConflict(f"result {result.result_id!r} was already reported with other content")
    return {"result_id": result.result_id, "status": row[1]}, row[1] == "queued"


def enqueue(tenant_id: str, result_id: str, *, delay_seconds: int = 0) -> None:
    queues.send_json(config.queues().hrms_writeback, {"tenant_id": tenant_id, "result_id": result_id},
                     delay_seconds=delay_seconds)


def result_status(conn: psycopg.Connection, tenant_id: str, result_id: str) -> dict[str, Any] | None:
    db.use_tenant(conn, tenant_id)
    row = conn.execute(
        "SELECT result_id, kind, title, completed_on, status, hrms_kind, hrms_record_id, failure_reason, attempts,"
        " received_at, written_at, user_id::text FROM hrms_results WHERE tenant_id = %s AND result_id = %s",
        [tenant_id, result_id]).fetchone()
    if row is None:
        return None
    return {"result_id": row[0], "kind": row[1], "title": row[2], "completed_on": row[3].isoformat(),
            "status": row[4], "hrms": row[5], "hrms_record_id": row[6], "failure_reason": row[7],
            "attempts": row[8], "received_at": row[9].isoformat(),
            "written_at": row[10].isoformat() if row[10] else None, "user_id": row[11]}


def list_results(conn: psycopg.Connection, tenant_id: str, *, status: str | None = None, limit: int = 50
                 ) -> list[dict[str, Any]]:
    db.use_tenant(conn, tenant_id)
    ids = conn.execute("SELECT result_id FROM hrms_results WHERE tenant_id = %s AND (%s::text IS NULL OR status = %s)"
                       " ORDER BY received_at DESC LIMIT %s", [tenant_id, status, status, limit]).fetchall()
    return [result_status(conn, tenant_id, row[0]) or {} for row in ids]


# --- the worker ------------------------------------------------------------------------------------------------


def parse_message(body: str) -> tuple[str, str]:
    document = json.loads(body)
    if not isinstance(document, dict) or not isinstance(document.get("result_id"), str):
        raise ValueError('an hrms-writeback message is {"tenant_id": UUID, "result_id": ID}')
    return str(uuid.UUID(str(document.get("tenant_id")))), document["result_id"]


def _fail(tenant_id: str, result_id: str, reason: str) -> None:
    with db.transaction(tenant_id=tenant_id) as conn:
        conn.execute("UPDATE hrms_results SET status = 'failed', failure_reason = %s WHERE tenant_id = %s"
                     " AND result_id = %s AND status = 'queued'", [reason[:1000], tenant_id, result_id])


def write_message(body: str) -> str:
    """Write one queued result; returns what happened (written, failed, skipped, paused)."""
    from shared.hrms.connectors import writer as writer_for
    from shared.secrets import resolve_secret
    from shared.tenants.registry import get_tenant_by_id

    tenant_id, result_id = parse_message(body)
    with db.transaction(tenant_id=tenant_id) as conn:
        tenant = get_tenant_by_id(conn, tenant_id)
        row = conn.execute(
            "UPDATE hrms_results SET attempts = attempts + 1 WHERE tenant_id = %s AND result_id = %s"
            " AND status = 'queued' RETURNING user_id, kind, title, completed_on, score, hours, credits, details",
            [tenant_id, result_id]).fetchone()
        hrms_id = None
        if row is not None:
            found = conn.execute(
                "SELECT hrms_id FROM hrms_employees WHERE tenant_id = %s AND user_id = %s"
                " ORDER BY departed_at IS NULL DESC, seen_at DESC LIMIT 1", [tenant_id, row[0]]).fetchone()
            hrms_id = found[0] if found else None
    if row is None:
        return "skipped"  # written, failed or unknown: a redelivery
    settings = tenant.hrms
    writeback = _writeback(tenant)
    if settings is None or not writeback.get("enabled") or not writeback.get(row[1]):
        _fail(tenant_id, result_id, f"write-back of {row[1]} results is not set up for this tenant")
        return "failed"
    if hrms_id is None:
        _fail(tenant_id, result_id, "the user has no record in the HRMS yet (the HRMS sync has not matched them)")
        return "failed"
    result = base.Result(result_id, row[1], row[2], row[3].isoformat(), _float(row[4]), _float(row[5]),
                         _float(row[6]), row[7])
    target = writeback[row[1]]
    writer = None
    try:
        writer = writer_for(settings.kind, base.ConnectorSettings(
            settings.base_url, resolve_secret(settings.credential_ref), settings.pace))
        record_id = writer.find_written(hrms_id, result, target) or writer.write(hrms_id, result, target)
    except RetryLater as pause:
        _record_error(tenant_id, result_id, pause)
        enqueue(tenant_id, result_id, delay_seconds=max(1, min(int(pause.retry_after or 60), MAX_PAUSE_SECONDS)))
        return "paused"
    except base.ConnectorError as error:
        if error.retryable:
            _record_error(tenant_id, result_id, error)
            raise
        _fail(tenant_id, result_id, str(error))
        log.warning("hrms-writeback: result %s of tenant %s refused: %s", result_id, tenant.slug, error)
        return "failed"
    finally:
        if writer is not None:
            writer.close()
    with db.transaction(tenant_id=tenant_id) as conn:
        conn.execute("UPDATE hrms_results SET status = 'written', hrms_kind = %s, hrms_record_id = %s,"
                     " written_at = now(), last_error = NULL WHERE tenant_id = %s AND result_id = %s",
                     [settings.kind, record_id, tenant_id, result_id])
    return "written"


def _float(value: Any) -> float | None:
    return float(value) if value is not None else None


def _record_error(tenant_id: str, result_id: str, error: BaseException) -> None:
    with db.transaction(tenant_id=tenant_id) as conn:
        conn.execute("UPDATE hrms_results SET last_error = %s WHERE tenant_id = %s AND result_id = %s",
                     [f"{type(error).__name__}: {error}"[:1000], tenant_id, result_id])


def fail_poisoned(body: str) -> bool:
    """End the result of a poisoned message as failed and tell the tenant's admins; False when already over."""
    from shared.hrms.engine import tell_admins

    try:
        tenant_id, result_id = parse_message(body)
    except (ValueError, TypeError):
        log.error("hrms-writeback-poison: a malformed message was dropped: %s", body[:200])
        return False
    with db.transaction(tenant_id=tenant_id) as conn:
        row = conn.execute(
            "UPDATE hrms_results SET status = 'failed', failure_reason = 'the write failed 5 times in a row; last"
            " error: ' || coalesce(last_error, 'unknown') WHERE tenant_id = %s AND result_id = %s"
            " AND status = 'queued' RETURNING failure_reason", [tenant_id, result_id]).fetchone()
    if row is None:
        return False
    tell_admins(tenant_id, f"hrms-writeback-failed-{result_id}", "Writing a result to your HR system failed",
                f"Result {result_id}: {row[0]}")
    return True


# --- configuration ---------------------------------------------------------------------------------------------


def configure(conn: psycopg.Connection, tenant: Tenant, document: Any) -> Tenant:
    """Check and save the tenant's write-back mapping ({"enabled", "completion", "assessment"})."""
    from shared.hrms.connectors import writer as writer_for
    from shared.secrets import resolve_secret
    from shared.tenants.registry import TenantChanges, update_tenant

    if tenant.hrms is None:
        raise InvalidValue("hrms", f"tenant {tenant.slug!r} has no HRMS settings (tenant update --hrms ...)")
    if not isinstance(document, dict) or set(document) - {"enabled", "completion", "assessment"}:
        raise InvalidValue("hrms.writeback",
                           'must be {"enabled": true|false, "completion": {...}, "assessment": {...}}')
    merged = {**tenant.hrms.writeback, **document}
    targets = {kind: merged[kind] for kind in base.RESULT_KINDS if merged.get(kind)}
    if merged.get("enabled") and not targets:
        raise InvalidValue("hrms.writeback", "name where completion and/or assessment results go before enabling")
    writer = writer_for(tenant.hrms.kind, base.ConnectorSettings(
        tenant.hrms.base_url, resolve_secret(tenant.hrms.credential_ref), tenant.hrms.pace))
    try:
        checked = {kind: writer.check_target(target) for kind, target in targets.items()}
    except base.ConnectorError as error:
        raise InvalidValue("hrms.writeback", str(error)) from None
    finally:
        writer.close()
    saved = {"enabled": bool(merged.get("enabled")), **checked}
    return update_tenant(conn, tenant.slug, TenantChanges(hrms={**tenant.hrms.as_dict(), "writeback": saved}))
