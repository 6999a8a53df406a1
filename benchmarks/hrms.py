"""HRMS read: the sync engine against the Personio v1 stand-in served from a forked process, pacing off.

Figures:
- full sync of HRMS_BENCH_EMPLOYEES (50,000) employees in pages of 100, every one matched by email to a
  provisioned user: employees per second (target at least 5,000), the process's peak resident memory
  during the sync and its growth over the resident memory before it; the same for a sync a fifth the
  size first, so that "does not grow with the number of employees" is a measured comparison (target:
  peak under 250 MB);
- incremental sync after 1% of the employees changed (target under 5 s);
- batched upsert (one statement per page of 100) against row by row (one statement per employee), both
  writing the same HRMS_BENCH_UPSERT_EMPLOYEES (5,000) new employees in the same run: the ratio.
"""

from __future__ import annotations

import json
import os
import random
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

EMPLOYEES = int(os.environ.get("HRMS_BENCH_EMPLOYEES", "50000"))
UPSERT_EMPLOYEES = int(os.environ.get("HRMS_BENCH_UPSERT_EMPLOYEES", "5000"))
MAPPING = {"competencies": "dynamic_1001", "review_rating": "dynamic_1002"}


def _rss_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


class _PeakMemory:
    """Samples the resident memory every 20 ms while a block runs."""

    def __enter__(self) -> _PeakMemory:
        self.before = _rss_mb()
        self.peak = self.before
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, _rss_mb())

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss_mb())


def _tenant_with_users(slug: str, base_url: str, workforce: Any) -> Any:
    """A tenant reading the stand-in, with every employee provisioned as a user (COPY: set-up, not measured)."""
    from shared import db
    from shared.tenants.registry import TenantChanges, create_tenant

    with db.transaction() as conn:
        tenant = create_tenant(conn, slug, TenantChanges(
            display_name=slug, add_domains=(f"{slug}.example",), provisioning_channel="scim",
            hrms={"kind": "personio", "base_url": base_url, "credential_ref": "bench-personio",
                  "field_mapping": MAPPING, "pace": False}))
    with db.connect_direct() as conn, conn.cursor().copy(
            "COPY users (tenant_id, primary_email, display_name, created_by_channel) FROM STDIN") as copy:
        for person in workforce.people():
            copy.write_row((tenant.id, person.email, f"{person.first_name} {person.last_name}", "scim"))
    with db.connect_direct(autocommit=True) as conn:
        conn.execute("ANALYZE users")
    return tenant


def _run(tenant: Any, mode: str) -> tuple[float, dict[str, int], _PeakMemory]:
    from shared import db
    from shared.hrms import engine, runs

    with db.transaction(tenant_id=tenant.id) as conn:
        run = runs.request_run(conn, tenant.id, mode, requested_by="bench")
    body = json.dumps(engine.message(tenant.id, run))
    with _PeakMemory() as memory:
        started = time.perf_counter()
        outcome = engine.sync_message(body, budget_seconds=3600)
        elapsed = time.perf_counter() - started
    if outcome.status != "finished":
        raise RuntimeError(f"the {mode} sync did not finish: {outcome}")
    return elapsed, outcome.counts, memory


def _upsert_ratio(base_url: str) -> dict[str, Any]:
    """The same new employees written batched and row by row, each into a tenant of its own."""
    from shared import db
    from shared.hrms import runs, store
    from shared.hrms.connectors.base import ConnectorSettings
    from shared.hrms.connectors.personio import connect
    from shared.tenants.registry import TenantChanges, create_tenant

    connector = connect(ConnectorSettings(base_url, json.dumps(
        {"client_id": "papi-local-client", "client_secret": "papi-local-secret"}), pace=False))
    pages, cursor = [], None
    while sum(len(page) for page in pages) < UPSERT_EMPLOYEES:
        fetched = connector.page(cursor)
        pages.append(fetched.employees)
        cursor = fetched.next_cursor
        if cursor is None:
            break
    connector.close()
    timings = {}
    for label, write in (("batched", store.upsert_page), ("row_by_row", store.upsert_rows_one_by_one)):
        with db.transaction() as conn:
            tenant = create_tenant(conn, f"upsert-{label.replace('_', '-')}", TenantChanges(
                display_name=label, add_domains=(f"{label.replace('_', '-')}.example",)))
            db.use_tenant(conn, tenant.id)
            run = runs.request_run(conn, tenant.id, "full", requested_by="bench")
        started = time.perf_counter()
        for page in pages:
            with db.transaction(tenant_id=tenant.id) as conn:
                write(conn, tenant.id, run.id, page, MAPPING)
        timings[label] = time.perf_counter() - started
    written = sum(len(page) for page in pages)
    return {"employees": written, "batched_per_second": round(written / timings["batched"]),
            "row_by_row_per_second": round(written / timings["row_by_row"]),
            "ratio": round(timings["row_by_row"] / timings["batched"], 1)}


def measure() -> dict[str, Any]:
    import httpx
    import psycopg

    from benchmarks.local_host import serve_in_child
    from local.azurite import free_port
    from local.hrms_people import Workforce
    from local.personio import PersonioStandIn
    from local.postgres import create_database, start_embedded_postgres
    from shared import config, db
    from shared.migrations import migrate

    small = EMPLOYEES // 5
    with tempfile.TemporaryDirectory() as folder:
        server = os.environ.get("DATABASE_URL") or start_embedded_postgres(Path(folder) / "pg", delete_on_exit=True)
        url = create_database(server, f"bench_hrms_{uuid.uuid4().hex[:8]}")
        with psycopg.connect(url) as conn:
            migrate(conn)
        os.environ.update({
            "DATABASE_URL": url, "OUTBOUND_ALLOWED_LOCAL_HOSTS": "127.0.0.1",
            "SECRET_BENCH_PERSONIO": json.dumps({"client_id": "papi-local-client",
                                                 "client_secret": "papi-local-secret"})})
        config.reset()
        big_force, small_force = Workforce(EMPLOYEES, domain="big.example"), Workforce(small, domain="small.example")
        big_standin = PersonioStandIn(big_force, port=free_port())
        small_standin = PersonioStandIn(small_force, port=free_port())
        big = _tenant_with_users("big", f"http://127.0.0.1:{big_standin.port}", big_force)
        little = _tenant_with_users("small", f"http://127.0.0.1:{small_standin.port}", small_force)
        children = [serve_in_child(big_standin), serve_in_child(small_standin)]
        try:
            small_seconds, _, small_memory = _run(little, "full")
            full_seconds, full_counts, full_memory = _run(big, "full")
            changed = random.Random(7).sample(range(EMPLOYEES), EMPLOYEES // 100)
            httpx.post(f"http://127.0.0.1:{big_standin.port}/_standin/change", json={"indexes": changed},
                       timeout=30).raise_for_status()
            incremental_seconds, incremental_counts, _ = _run(big, "incremental")
            ratio = _upsert_ratio(f"http://127.0.0.1:{big_standin.port}")
        finally:
            db.close_pools()
            for child in children:
                child.terminate()
                child.join(10)
    if full_counts["seen"] != EMPLOYEES or full_counts["unmatched"] != 0:
        raise RuntimeError(f"the full sync saw {full_counts}")
    return {
        "full_sync": {
            "employees": EMPLOYEES, "seconds": round(full_seconds, 2),
            "employees_per_second": round(EMPLOYEES / full_seconds), "target_per_second": 5000,
            "peak_rss_mb": round(full_memory.peak, 1),
            "rss_growth_mb": round(full_memory.peak - full_memory.before, 1), "peak_target_mb": 250},
        "full_sync_fifth_the_size": {
            "employees": small, "employees_per_second": round(small / small_seconds),
            "peak_rss_mb": round(small_memory.peak, 1),
            "rss_growth_mb": round(small_memory.peak - small_memory.before, 1)},
        "incremental_sync": {
            "employees": EMPLOYEES, "changed": len(changed), "seen": incremental_counts["seen"],
            "updated": incremental_counts["updated"], "seconds": round(incremental_seconds, 2),
            "target_seconds": 5},
        "upsert": ratio,
        "pages_of": 100,
    }
