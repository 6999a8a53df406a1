"""WorkOS Directory Sync: webhook acknowledgements through the local host, and Events API catch-up.

1. DSYNC_BENCH_WEBHOOKS (10,000) signed ``dsync.user.created`` webhooks posted to the real app under
   the local host (Postgres, Azurite, the dsync-apply worker applying them meanwhile) by
   DSYNC_BENCH_SENDERS (2: the cores of the reference machine) concurrent senders: acknowledgements
   per second and the p50/p99 acknowledgement latency (target: p99 under 50 ms). Afterwards every
   event must be applied.
2. Catch-up: DSYNC_BENCH_EVENTS (100,000) events of one directory in the WorkOS stand-in (an initial
   sync: users created, then updated, groups, members added), read by the Events API poller from
   scratch and applied: events applied per second (target: at least 2,000).
"""

from __future__ import annotations

import os
import statistics
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from benchmarks.local_host import serve_in_child, start_app
from local.azurite import free_port

WEBHOOKS = int(os.environ.get("DSYNC_BENCH_WEBHOOKS", "10000"))
SENDERS = int(os.environ.get("DSYNC_BENCH_SENDERS", "2"))
CATCH_UP_EVENTS = int(os.environ.get("DSYNC_BENCH_EVENTS", "100000"))
SECRET = "bench-webhook-secret"


def _database(server_url: str) -> str:
    import psycopg

    from local.postgres import create_database
    from shared.migrations import migrate

    url = create_database(server_url, f"bench_dsync_{uuid.uuid4().hex[:8]}")
    with psycopg.connect(url) as conn:
        migrate(conn)
    return url


def _settings(database_url: str, storage: str, standin: Any) -> dict[str, str]:
    from shared import config

    env = {name: setting.default for name, setting in config.SETTINGS.items() if setting.default is not None}
    return env | {
        "DATABASE_URL": database_url, "AzureWebJobsStorage": storage, "WORKOS_API_KEY": standin.api_key,
        "WORKOS_CLIENT_ID": standin.client_id, "WORKOS_BASE_URL": standin.base_url,
        "WORKOS_WEBHOOK_SECRET": SECRET, "OUTBOUND_ALLOWED_LOCAL_HOSTS": "127.0.0.1",
        "DSYNC_POLL_SCHEDULE": "0 0 0 1 1 *",  # the poller stays out of the acknowledgement figures
    }


def _tenant(slug: str, organization_id: str, domain: str) -> Any:
    from shared import db
    from shared.tenants.registry import TenantChanges, create_tenant

    with db.transaction() as conn:
        return create_tenant(conn, slug, TenantChanges(
            display_name=slug.title(), add_domains=(domain,), provisioning_channel="workos",
            workos_organization_id=organization_id))


def _applied(tenant_id: str) -> int:
    from shared import db

    with db.transaction(tenant_id=tenant_id) as conn:
        return conn.execute("SELECT count(*) FROM workos_events WHERE status <> 'pending'").fetchone()[0]


def _webhooks(folder: Path, standin: Any, env: dict[str, str]) -> dict[str, Any]:
    import json

    from local.workos import sign

    organization = standin.create_organization("Hooks", ["hooks.example"])
    directory = standin.add_directory(organization["id"])
    tenant = _tenant("hooks", organization["id"], "hooks.example")
    bodies = [json.dumps(standin.emit("dsync.user.created", standin.directory_user(
        directory, email=f"user{n}@hooks.example", first_name=f"User{n}"))).encode() for n in range(WEBHOOKS)]
    host_env = {name: value for name, value in os.environ.items() if name not in env} | env
    host, origin = start_app(folder, host_env, ready="/api/health")
    url = f"{origin}/api/webhooks/workos"
    try:
        latencies: list[float] = []
        failures: list[int] = []
        lock = threading.Lock()

        def send(share: list[bytes]) -> None:
            with httpx.Client(timeout=30) as client:
                for body in share:
                    started = time.perf_counter()
                    response = client.post(url, content=body, headers={
                        "WorkOS-Signature": sign(body, SECRET), "Content-Type": "application/json"})
                    elapsed = time.perf_counter() - started
                    with lock:
                        latencies.append(elapsed)
                        if response.status_code != 200:
                            failures.append(response.status_code)

        threads = [threading.Thread(target=send, args=(bodies[index::SENDERS],)) for index in range(SENDERS)]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - started
        deadline = time.monotonic() + 600
        while _applied(tenant.id) < WEBHOOKS and time.monotonic() < deadline:
            time.sleep(0.5)
        applied_after = time.perf_counter() - started
        all_applied = _applied(tenant.id)
    finally:
        host.terminate()
        host.wait(30)
    ordered = sorted(latencies)
    return {
        "webhooks": WEBHOOKS, "senders": SENDERS, "non_200": len(failures),
        "acknowledged_per_second": round(WEBHOOKS / elapsed, 1),
        "ack_p50_ms": round(statistics.median(ordered) * 1000, 2),
        "ack_p99_ms": round(ordered[int(len(ordered) * 0.99) - 1] * 1000, 2),
        "ack_p99_target_ms": 50,
        "all_applied": all_applied == WEBHOOKS,
        "applied_by_worker_within_seconds": round(applied_after, 1),
    }


def _initial_sync(standin: Any, directory: dict[str, Any], total: int) -> dict[str, int]:
    """An initial sync as WorkOS would emit it: 40% users created, 20% updated, 0.2% groups, the rest
    member additions (mostly of the users already there)."""
    clock = datetime.now(UTC) - timedelta(days=1)
    counts = {"users": int(total * 0.4), "updates": int(total * 0.2), "groups": max(1, total // 500)}
    counts["members"] = total - 1 - sum(counts.values())

    def tick() -> datetime:
        nonlocal clock
        clock += timedelta(milliseconds=1)
        return clock

    standin.emit("dsync.activated", standin.directory_payload(directory), created_at=tick())
    users = []
    for n in range(counts["users"]):
        user = standin.directory_user(directory, email=f"user{n}@catchup.example", first_name=f"U{n}",
                                      role_slug="member", updated_at=tick())
        users.append(user)
        standin.emit("dsync.user.created", user, created_at=clock)
    for n in range(counts["updates"]):
        user = standin.directory_user(directory, user_id=users[n]["id"], email=users[n]["email"],
                                      first_name=f"Renamed{n}", state="inactive" if n % 10 == 0 else "active",
                                      role_slug="member", updated_at=tick())
        users[n] = user
        standin.emit("dsync.user.updated", user, created_at=clock)
    groups = [standin.directory_group(directory, name=f"Group {n}", updated_at=tick())
              for n in range(counts["groups"])]
    for group in groups:
        standin.emit("dsync.group.created", group, created_at=clock)
    for n in range(counts["members"]):
        standin.emit("dsync.group.user_added", standin.membership_payload(
            directory, users[n % len(users)], groups[n % len(groups)]), created_at=tick())
    return counts


def _catch_up() -> dict[str, Any]:
    from local.workos import WorkOSStandIn
    from shared import config, workos_api

    # A stand-in of its own (the webhook events are not part of this history), filled here and then
    # served from a forked process: WorkOS is another machine, not a thread sharing our interpreter.
    standin = WorkOSStandIn(port=free_port())
    organization = standin.create_organization("Catchup", ["catchup.example"])
    directory = standin.add_directory(organization["id"])
    tenant = _tenant("catchup", organization["id"], "catchup.example")
    mix = _initial_sync(standin, directory, CATCH_UP_EVENTS)
    server = serve_in_child(standin)
    try:
        os.environ["WORKOS_BASE_URL"] = f"http://127.0.0.1:{standin.port}"
        config.reset()
        workos_api.reset()
        return _catch_up_from(tenant, mix)
    finally:
        server.terminate()
        server.join(10)


def _catch_up_from(tenant: Any, mix: dict[str, int]) -> dict[str, Any]:
    from shared.directory import poller

    started = time.perf_counter()
    applied = received = 0
    while True:
        report = poller.poll(budget_seconds=3600)
        applied += report.applied
        received += report.received
        if report.received == 0:
            break
    elapsed = time.perf_counter() - started
    return {
        "events": CATCH_UP_EVENTS, "mix": mix, "received": received, "applied": applied,
        "all_applied": _applied(tenant.id) == CATCH_UP_EVENTS,
        "seconds": round(elapsed, 1), "applied_per_second": round(applied / elapsed, 1),
        "target_per_second": 2000,
    }


def measure() -> dict[str, Any]:
    from local.azurite import start_azurite
    from local.postgres import start_embedded_postgres
    from local.workos import WorkOSStandIn
    from shared import config, db, queues, workos_api

    with tempfile.TemporaryDirectory() as folder_name, WorkOSStandIn() as standin:
        folder = Path(folder_name)
        server_url = os.environ.get("DATABASE_URL") or start_embedded_postgres(folder / "pg", delete_on_exit=True)
        azurite = start_azurite(None)
        try:
            env = _settings(_database(server_url), azurite.connection_string, standin)
            os.environ.update(env)
            config.reset()
            workos_api.reset()
            queues.ensure_queues()
            webhooks = _webhooks(folder, standin, env)
            catch_up = _catch_up()
        finally:
            db.close_pools()
            azurite.stop()
    return {"webhooks": webhooks, "events_api_catch_up": catch_up}
