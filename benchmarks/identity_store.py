"""The identity store: how fast people are provisioned and re-asserted, and how the change log holds
up under concurrent writers of one tenant (each operation is one transaction, as a SCIM call is).

Runs against a fresh database on the embedded server (or on DATABASE_URL's server when set).
"""

from __future__ import annotations

import os
import statistics
import tempfile
import threading
import time
import uuid
from pathlib import Path

PEOPLE = 1000
WRITERS = 4


def _database(folder: Path) -> str:
    import psycopg

    from local.postgres import create_database, start_embedded_postgres
    from shared.migrations import migrate

    server = os.environ.get("DATABASE_URL") or start_embedded_postgres(folder / "pg", delete_on_exit=True)
    url = create_database(server, f"bench_{uuid.uuid4().hex[:8]}")
    with psycopg.connect(url) as conn:
        migrate(conn)
    return url


def measure() -> dict[str, float | int]:
    from shared import config, db
    from shared.identity import store
    from shared.identity.changelog import Change, append_changes
    from shared.identity.models import Actor, ActorKind, Channel, PersonClaims
    from shared.tenants.registry import TenantChanges, create_tenant

    with tempfile.TemporaryDirectory() as folder:
        os.environ["DATABASE_URL"] = _database(Path(folder))
        os.environ["DB_POOL_MAX_SIZE"] = str(WRITERS + 1)
        config.reset()
        actor = Actor(ActorKind.SCIM_TOKEN, "bench")
        with db.transaction() as conn:
            tenant = create_tenant(conn, "bench", TenantChanges(display_name="Bench", add_domains=("bench.example",)))

        def provision(index: int, **fields: str) -> float:
            claims = PersonClaims(Channel.SCIM, "scim", f"u-{index}", email=f"p{index}@bench.example", **fields)
            started = time.perf_counter()
            with db.transaction() as conn:
                store.sync_person(conn, tenant, claims, actor)
            return time.perf_counter() - started

        created = [provision(index) for index in range(PEOPLE)]
        unchanged = [provision(index) for index in range(PEOPLE)]
        updated = [provision(index, given_name="Renamed") for index in range(PEOPLE)]

        def writer(count: int) -> None:
            for _ in range(count):
                with db.transaction(tenant_id=tenant.id) as conn:
                    append_changes(conn, tenant.id, actor, [Change("user", str(uuid.uuid4()), "touched")])

        per_writer = PEOPLE // WRITERS
        threads = [threading.Thread(target=writer, args=(per_writer,)) for _ in range(WRITERS)]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        concurrent_seconds = time.perf_counter() - started
        db.close_pools()

    def per_second(samples: list[float]) -> float:
        return round(len(samples) / sum(samples), 1)

    def p95_ms(samples: list[float]) -> float:
        return round(statistics.quantiles(samples, n=20)[-1] * 1000, 2)

    return {
        "people": PEOPLE,
        "create_per_second": per_second(created),
        "create_p95_ms": p95_ms(created),
        "unchanged_resync_per_second": per_second(unchanged),
        "update_per_second": per_second(updated),
        "update_p95_ms": p95_ms(updated),
        "changelog_concurrent_writers": WRITERS,
        "changelog_appends_per_second": round(per_writer * WRITERS / concurrent_seconds, 1),
    }
