"""The HRMS sync engine: requesting runs, the ``hrms-sync`` worker that advances them page by page, and the
end of runs whose messages kept failing.

Contract (tests/hrms/test_engine.py):
- ``start_run`` records a run (or finds the tenant's unfinished one) and, once committed, queues
  ``{"tenant", "mode", "run_id"}`` on ``hrms-sync``;
- a message advances its run while holding the run's lease: it streams pages from the tenant's connector
  (the next page is fetched while the current one is written), upserts each page in one statement and
  moves the run's checkpoint in the same transaction, so a crash or a redelivered message resumes after
  the last written page and nothing is lost or counted twice. A full run ends by marking the employees it
  did not see as departed. After ``BUDGET_SECONDS`` the message queues the run again and stops, so one
  message's work stays well inside its visibility timeout;
- a message whose run another worker holds comes back when that lease ends; a message for a finished or
  unknown run does nothing; a malformed message raises (the host poisons it);
- an HRMS that asks for a long pause (``RetryLater``) gets the message back after it, without spending one
  of the message's attempts; a refusal that trying again cannot mend (a refused credential, a broken
  answer: a non-retryable ConnectorError) fails the run at once and tells the admins;
- any other failing attempt records its error on the run and raises (the host retries it); ``fail_poisoned`` ends
  the run of a message that reached ``hrms-sync-poison`` as failed with the last error, and tells the
  tenant's admins (a Teams alert when the tenant has Teams, the bot is configured and it has admins;
  otherwise the run's record and the log are the report).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from shared import config, db, queues
from shared.hrms import runs, store
from shared.hrms.connectors import base
from shared.http import RetryLater

log = logging.getLogger(__name__)

BUDGET_SECONDS = 240.0
MAX_PAUSE_SECONDS = 3600  # a queue message can be hidden up to 7 days; an hour keeps the run in sight
MAX_DEQUEUE = 5  # host.json maxDequeueCount: the attempts a message gets before the poison queue


class LeaseLost(Exception):
    """Another worker took the run over (this one was too slow): stop without writing."""


@dataclass
class Outcome:
    status: str  # finished | continued | busy | skipped | paused | failed
    pages: int = 0
    counts: dict[str, int] = field(default_factory=dict)


def message(tenant_id: str, run: runs.Run) -> dict[str, str]:
    return {"tenant": tenant_id, "mode": run.mode, "run_id": run.id}


def _send(payload: dict[str, str], delay_seconds: int = 0) -> None:
    queues.send_json(config.queues().hrms_sync, payload, delay_seconds=delay_seconds)


def request(conn: Any, tenant: Any, mode: str, *, requested_by: str) -> runs.Run:
    """Record a run for a tenant in this transaction (or find its unfinished one); queue it after commit."""
    from shared.hrms.connectors import supports_incremental
    from shared.tenants.models import InvalidValue

    if tenant.hrms is None:
        raise InvalidValue("hrms", f"tenant {tenant.slug!r} has no HRMS settings (tenant update --hrms ...)")
    db.use_tenant(conn, tenant.id)
    return runs.request_run(conn, tenant.id, mode, requested_by=requested_by,
                            incremental_possible=supports_incremental(tenant.hrms.kind))


def queue(run: runs.Run) -> None:
    if run.created:
        _send(message(run.tenant_id, run))


def start_run(tenant_id: str, mode: str, *, requested_by: str) -> runs.Run:
    """Request a run for a tenant and queue it (the unfinished run it has already is returned as it is)."""
    from shared.tenants.registry import get_tenant_by_id

    with db.transaction(tenant_id=tenant_id) as conn:
        run = request(conn, get_tenant_by_id(conn, tenant_id), mode, requested_by=requested_by)
    queue(run)
    return run


def parse_message(body: str) -> tuple[str, str]:
    document = json.loads(body)
    if not isinstance(document, dict) or document.get("mode") not in ("full", "incremental"):
        raise ValueError('an hrms-sync message is {"tenant": UUID, "mode": "full"|"incremental", "run_id": UUID}')
    return str(uuid.UUID(str(document.get("tenant")))), str(uuid.UUID(str(document.get("run_id"))))


def _holder() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def open_connector(hrms: Any) -> base.Connector:
    """The tenant's connector, its credential resolved from Key Vault (or SECRET_<NAME> locally)."""
    from shared.hrms.connectors import connect
    from shared.secrets import resolve_secret

    return connect(hrms.kind, base.ConnectorSettings(hrms.base_url, resolve_secret(hrms.credential_ref), hrms.pace))


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"[:1000]


def sync_message(body: str, *, budget_seconds: float = BUDGET_SECONDS) -> Outcome:
    from shared.tenants.registry import get_tenant_by_id

    tenant_id, run_id = parse_message(body)
    holder = _holder()
    with db.transaction(tenant_id=tenant_id) as conn:
        claimed = runs.claim(conn, tenant_id, run_id, holder)
        tenant = get_tenant_by_id(conn, tenant_id) if claimed.run is not None else None
    if claimed.finished:
        log.info("hrms-sync: run %s is over: nothing to do", run_id)
        return Outcome("skipped")
    run = claimed.run
    if run is None:
        _send(json.loads(body), delay_seconds=max(1, int(claimed.held_for_seconds) + 1))
        log.info("hrms-sync: run %s is held by another worker: back in %.0f s", run_id, claimed.held_for_seconds)
        return Outcome("busy")
    assert tenant is not None
    if tenant.hrms is None:
        with db.transaction(tenant_id=tenant_id) as conn:
            runs.fail(conn, tenant_id, run_id, "the tenant has no HRMS settings any more")
        return Outcome("skipped")
    connector: base.Connector | None = None
    try:
        connector = open_connector(tenant.hrms)
        outcome = _advance(run, connector, tenant.hrms.field_mapping, holder, time.monotonic() + budget_seconds)
    except LeaseLost:
        log.warning("hrms-sync: run %s was taken over by another worker", run_id)
        return Outcome("busy")
    except RetryLater as pause:  # the HRMS asked for a long pause: come back then, without spending an attempt
        with db.transaction(tenant_id=tenant_id) as conn:
            runs.record_error(conn, run_id, holder, _describe(pause))
        _send(json.loads(body), delay_seconds=max(1, min(int(pause.retry_after or 60), MAX_PAUSE_SECONDS)))
        log.warning("hrms-sync: run %s of tenant %s paused: %s", run_id, tenant.slug, pause)
        return Outcome("paused")
    except Exception as error:
        if isinstance(error, base.ConnectorError) and not error.retryable:
            # A refused credential or a broken answer: trying again cannot help.
            with db.transaction(tenant_id=tenant_id) as conn:
                failed = runs.fail(conn, tenant_id, run_id, _describe(error))
            if failed is not None:
                notify_admins(tenant_id, failed)
            return Outcome("failed")
        with db.transaction(tenant_id=tenant_id) as conn:
            runs.record_error(conn, run_id, holder, _describe(error))
        log.error("hrms-sync: run %s of tenant %s: %s", run_id, tenant.slug, _describe(error))
        raise
    finally:
        if connector is not None:
            connector.close()
    if outcome.status == "continued":
        _send(message(tenant_id, run))
    log.info("hrms-sync: run %s of tenant %s %s after %d page(s)", run_id, tenant.slug, outcome.status, outcome.pages)
    return outcome


def _advance(run: runs.Run, connector: base.Connector, mapping: dict[str, str], holder: str,
             deadline: float) -> Outcome:
    outcome = Outcome("continued", counts=dict.fromkeys(runs.COUNTS, 0))
    changed_since = run.changed_since if run.mode == "incremental" else None
    if run.pages > 0 and run.cursor is None:  # the last page was written: only the ending is left
        return _finish(run, holder, outcome)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="hrms-page") as fetcher:
        pending: Future[base.Page] | None = fetcher.submit(connector.page, run.cursor, changed_since=changed_since)
        while pending is not None:
            page = pending.result()
            more = page.next_cursor is not None
            # Fetch the next page while this one is written (unless the budget is spent).
            pending = fetcher.submit(connector.page, page.next_cursor, changed_since=changed_since) \
                if more and time.monotonic() < deadline else None
            with db.transaction(tenant_id=run.tenant_id) as conn:
                # The page and its checkpoint commit together: a commit lost in a crash takes its
                # checkpoint with it and the page is fetched again, so no page needs to wait for fsync.
                conn.execute("SET LOCAL synchronous_commit = off")
                counts = store.upsert_page(conn, run.tenant_id, run.id, page.employees, mapping)
                if not runs.checkpoint(conn, run.id, holder, page.next_cursor, counts):
                    raise LeaseLost(run.id)
            outcome.pages += 1
            for name, value in counts.items():
                outcome.counts[name] = outcome.counts.get(name, 0) + value
            if not more:
                return _finish(run, holder, outcome)
    with db.transaction(tenant_id=run.tenant_id) as conn:
        runs.release(conn, run.id, holder)
    return outcome


def _finish(run: runs.Run, holder: str, outcome: Outcome) -> Outcome:
    with db.transaction(tenant_id=run.tenant_id) as conn:
        departed = store.mark_departed(conn, run.tenant_id, run.id) if run.mode == "full" else 0
        if not runs.finish(conn, run.id, holder, departed=departed):
            raise LeaseLost(run.id)
    outcome.status = "finished"
    outcome.counts["departed"] = departed
    return outcome


# --- runs whose messages kept failing ---------------------------------------------------------------------------


def fail_poisoned(body: str) -> runs.Run | None:
    """End the run of a poisoned message as failed and tell the tenant's admins; None when already over."""
    try:
        tenant_id, run_id = parse_message(body)
    except (ValueError, TypeError):
        log.error("hrms-sync-poison: a malformed message was dropped: %s", body[:200])
        return None
    with db.transaction(tenant_id=tenant_id) as conn:
        current = runs.get_run(conn, tenant_id, run_id)
        reason = f"the sync failed {MAX_DEQUEUE} times in a row; last error: " \
                 f"{(current.last_error if current else None) or 'unknown'}"
        failed = runs.fail(conn, tenant_id, run_id, reason)
    if failed is not None:
        notify_admins(tenant_id, failed)
    return failed


def notify_admins(tenant_id: str, run: runs.Run) -> str:
    """Tell the tenant's admins that a run failed; returns how ("teams" or "log")."""
    return tell_admins(tenant_id, f"hrms-failed-{run.id}", "HR data sync failed",
                       f"The {run.mode} sync of your HR system failed: {run.failure_reason}")


def tell_admins(tenant_id: str, alert_id: str, title: str, text: str) -> str:
    """A Teams alert to the tenant's admins (users with the admin role) when the tenant has Teams and the
    bot is configured; otherwise the log (and the record the caller keeps) is the report."""
    from shared.teams import alerts
    from shared.tenants.registry import get_tenant_by_id

    with db.transaction(tenant_id=tenant_id) as conn:
        tenant = get_tenant_by_id(conn, tenant_id)
        admins = [row[0] for row in conn.execute(
            "SELECT id::text FROM users WHERE tenant_id = %s AND status = 'active' AND 'admin' = ANY(role_slugs)",
            [tenant_id]).fetchall()]
        accepted = None
        if tenant.teams_tenant_id and config.MICROSOFT_APP_ID.optional() and admins:
            request = alerts.AlertRequest(alert_id=alert_id[:128], tenant=tenant.slug, recipients=tuple(admins),
                                          title=title, text=text[:alerts.MAX_TEXT])
            accepted = alerts.accept_alert(conn, tenant, request, created_by="hrms")
    log.error("hrms: tenant %s: %s (%s): %s", tenant.slug, title, alert_id, text)
    if accepted is None:
        return "log"
    alerts.enqueue_batches(accepted.tenant_id, accepted.alert_id, accepted.pending_batches)
    return "teams"


def queue_again(tenant_id: str, run_id: str, mode: str) -> None:
    """Send a run's message again (its first one was lost, or never sent)."""
    _send({"tenant": tenant_id, "mode": mode, "run_id": run_id})
