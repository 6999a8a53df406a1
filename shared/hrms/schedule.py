"""The HRMS timer: queue the syncs that are due, and again the runs whose message was lost.

Contract (tests/hrms/test_schedule.py):
- a tenant with HRMS settings, active, and no unfinished run is due when its ``schedule`` (six-field
  NCRONTAB, UTC) has an occurrence between its last queued run and now (never synced: due at once);
- a due sync is full when the tenant has no successful full run within ``HRMS_FULL_SYNC_DAYS`` (only full
  runs find departed employees), else incremental (a connector that cannot sync incrementally runs full);
- a run still queued ``STALE_MINUTES`` after it was queued, or running with no lease held for that long,
  gets its message again (an enqueue that failed after the run was recorded, a message lost; a duplicate
  is harmless: the lease lets one message work), so a tenant never stays behind a run nobody works on.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from shared import config, db
from shared.hrms import engine

log = logging.getLogger(__name__)

STALE_MINUTES = 15


@dataclass(frozen=True)
class Queued:
    tenant: str
    run_id: str
    mode: str
    reason: str  # due | stale


def is_due(schedule: str, last_queued: datetime | None, now: datetime) -> bool:
    from croniter import croniter

    if last_queued is None:
        return True
    return croniter(schedule, last_queued, second_at_beginning=True).get_next(datetime) <= now


def queue_due_runs(now: datetime | None = None) -> list[Queued]:
    now = now or datetime.now(UTC)
    queued: list[Queued] = []
    with db.transaction(all_tenants=True) as conn:
        tenants = conn.execute(
            "SELECT t.id::text, t.slug, t.hrms ->> 'schedule',"
            " (SELECT max(queued_at) FROM hrms_runs r WHERE r.tenant_id = t.id),"
            " (SELECT max(started_at) FROM hrms_runs r WHERE r.tenant_id = t.id AND r.status = 'succeeded'"
            "  AND r.mode = 'full'),"
            " EXISTS (SELECT 1 FROM hrms_runs r WHERE r.tenant_id = t.id AND r.status IN ('queued', 'running'))"
            " FROM tenants t WHERE t.hrms IS NOT NULL AND t.status = 'active' ORDER BY t.slug").fetchall()
        stale = conn.execute(
            "SELECT tenant_id::text, id::text, mode FROM hrms_runs WHERE (status = 'queued' AND queued_at < now() -"
            " make_interval(mins => %s)) OR (status = 'running' AND coalesce(lease_expires_at, started_at) < now() -"
            " make_interval(mins => %s))", [STALE_MINUTES, STALE_MINUTES]).fetchall()
    full_after = timedelta(days=config.hrms_full_sync_days())
    for tenant_id, slug, schedule, last_queued, last_full, unfinished in tenants:
        try:
            if unfinished or not is_due(schedule or "0 0 2 * * *", last_queued, now):
                continue
            mode = "full" if last_full is None or now - last_full > full_after else "incremental"
            run = engine.start_run(tenant_id, mode, requested_by="schedule")
            queued.append(Queued(slug, run.id, run.mode, "due"))
        except Exception as error:  # one tenant's bad settings must not hold back the others
            log.error("hrms schedule: tenant %s: %s: %s", slug, type(error).__name__, error)
    for tenant_id, run_id, mode in stale:
        engine.queue_again(tenant_id, run_id, mode)
        queued.append(Queued(tenant_id, run_id, mode, "stale"))
    if queued:
        log.info("hrms schedule: %d run(s) queued", len(queued))
    return queued
