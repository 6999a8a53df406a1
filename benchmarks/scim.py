"""SCIM throughput over HTTP against scim2-server's in-memory development server, and userName lookups
in-process at a million users.

1. Both servers run on this machine, measured in the same run with the same httpx client: ours is the
   real app under the local host on Postgres (fsync and synchronous_commit on, checked), theirs is
   ``scim2-server --bearer-token``. Each gets SCIM_BENCH_USERS (20,000) sequential creates, then
   SCIM_BENCH_OPERATIONS (2,000) sequential gets, PATCHes and ``userName eq`` filters on random users.
   The figure is operations per second and ours/theirs per operation (target: at least 1.0).
2. In-process, on SCIM_BENCH_SEED_USERS (1,000,000) users seeded with COPY: the p50/p99 of
   ``userName eq`` through the Postgres ScimStorage (target p99 under 10 ms), and the process's peak
   memory before and after the lookups (it must not grow with the number of users). Then a group of
   100,000 of them (fewer when fewer are seeded): the p50/p99 of adding one member and removing it,
   each a PATCH through the request layer, which must not load or rewrite the member list.
"""

from __future__ import annotations

import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from benchmarks.local_host import start_app, wait_for
from local.azurite import free_port

USERS = int(os.environ.get("SCIM_BENCH_USERS", "20000"))
OPERATIONS = int(os.environ.get("SCIM_BENCH_OPERATIONS", "2000"))
SEED_USERS = int(os.environ.get("SCIM_BENCH_SEED_USERS", "1000000"))
LOOKUPS = 2000
LARGE_GROUP_MEMBERS = 100_000
GROUP_PATCHES = 100
USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
PATCH_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"
TOKEN = "bench-token-" + uuid.uuid4().hex


def _user(index: int) -> dict[str, Any]:
    return {"schemas": [USER_SCHEMA], "userName": f"user{index}@bench.example", "active": True,
            "name": {"givenName": f"Given{index}", "familyName": f"Family{index}"},
            "emails": [{"value": f"user{index}@bench.example", "type": "work", "primary": True}]}


def _drive(base_url: str, token: str) -> dict[str, float]:
    """Sequential creates, gets, PATCHes and userName filters; operations per second of each."""
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/scim+json"}
    rates: dict[str, float] = {}
    ids: list[str] = []
    with httpx.Client(base_url=base_url, headers=headers, timeout=60) as client:
        started = time.perf_counter()
        for index in range(USERS):
            response = client.post("/Users", json=_user(index))
            if response.status_code != 201:
                raise RuntimeError(f"create failed: {response.status_code} {response.text[:200]}")
            ids.append(response.json()["id"])
        rates["create"] = USERS / (time.perf_counter() - started)
        picks = random.Random(7).choices(range(USERS), k=OPERATIONS)

        def timed(name: str, call: Any) -> None:
            begun = time.perf_counter()
            for index in picks:
                response = call(index)
                if response.status_code >= 300:
                    raise RuntimeError(f"{name} failed: {response.status_code} {response.text[:200]}")
            rates[name] = OPERATIONS / (time.perf_counter() - begun)

        timed("get", lambda index: client.get(f"/Users/{ids[index]}"))
        timed("patch", lambda index: client.patch(f"/Users/{ids[index]}", json={
            "schemas": [PATCH_SCHEMA], "Operations": [{"op": "replace", "path": "title", "value": f"T{index}"}]}))
        timed("filter_username_eq", lambda index: client.get(
            "/Users", params={"filter": f'userName eq "user{index}@bench.example"'}))
    return {name: round(rate, 1) for name, rate in rates.items()}


def _rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def _our_server(database_url: str, storage: str, folder: Path) -> tuple[subprocess.Popen, str, str]:
    from shared import config, db
    from shared.scim.tokens import create_scim_token
    from shared.tenants.registry import TenantChanges, create_tenant

    os.environ["DATABASE_URL"] = database_url
    config.reset()
    with db.transaction() as conn:
        tenant = create_tenant(conn, "bench", TenantChanges(display_name="Bench", add_domains=("bench.example",)))
        _, token = create_scim_token(conn, tenant, "bench", created_by="bench")
    db.close_pools()
    env = {name: value for name, value in os.environ.items() if name not in config.SETTINGS}
    env |= {name: setting.default for name, setting in config.SETTINGS.items() if setting.default is not None}
    # Storage too: the app's queue triggers (dsync-apply) need it for the host to start.
    env |= {"DATABASE_URL": database_url, "SCIM_CURSOR_SECRET": "bench", "AzureWebJobsStorage": storage}
    process, origin = start_app(folder, env, ready="/api/scim/v2/bench/ServiceProviderConfig",
                                headers={"Authorization": f"Bearer {token}"})
    return process, f"{origin}/api/scim/v2/bench", token


def _their_server() -> tuple[subprocess.Popen, str]:
    port = free_port()
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "scim2-server"), "--port", str(port), "--bearer-token", TOKEN],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}/v2"
    wait_for(base + "/ServiceProviderConfig", {"Authorization": f"Bearer {TOKEN}"}, process)
    return process, base


def _stop(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGINT)
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()


def _durability(database_url: str) -> dict[str, str]:
    import psycopg

    with psycopg.connect(database_url) as conn:
        return {name: conn.execute(f"SHOW {name}").fetchone()[0] for name in ("fsync", "synchronous_commit")}


def _seed_with_copy(database_url: str, tenant_id: str, count: int) -> list[uuid.UUID]:
    """Users, their SCIM identity and their SCIM resource, written with COPY (as the database owner)."""
    import psycopg
    from psycopg.types.json import Jsonb

    with psycopg.connect(database_url) as conn:
        ids = [uuid.uuid4() for _ in range(count)]
        users = "COPY users (id, tenant_id, primary_email, status, created_by_channel) FROM STDIN"
        identities = "COPY user_identities (tenant_id, user_id, channel, issuer, external_id) FROM STDIN"
        resources = "COPY scim_users (user_id, tenant_id, user_name, user_name_key, document) FROM STDIN"
        with conn.cursor() as cursor:
            with cursor.copy(users) as copy:
                for index, user_id in enumerate(ids):
                    copy.write_row((user_id, tenant_id, f"seed{index}@bench.example", "active", "scim"))
            with cursor.copy(identities) as copy:
                for user_id in ids:
                    copy.write_row((tenant_id, user_id, "scim", "scim", str(user_id)))
            with cursor.copy(resources) as copy:
                for index, user_id in enumerate(ids):
                    name = f"seed{index}@bench.example"
                    copy.write_row((user_id, tenant_id, name, name, Jsonb({"schemas": [USER_SCHEMA], "userName": name,
                                                                           "active": True})))
        conn.execute("ANALYZE users, user_identities, scim_users")
    return ids


def _fill_group(database_url: str, tenant_id: str, group_id: str, members: list[uuid.UUID]) -> None:
    import psycopg

    with psycopg.connect(database_url) as conn:
        with conn.cursor().copy("COPY group_memberships (tenant_id, group_id, user_id) FROM STDIN") as copy:
            for user_id in members:
                copy.write_row((tenant_id, group_id, user_id))
        conn.execute("ANALYZE group_memberships")  # as autovacuum would after such a load


def _large_group(database_url: str, tenant: Any, users: list[uuid.UUID]) -> dict[str, Any]:
    """Members-only PATCHes of a LARGE_GROUP_MEMBERS group through the request layer: one member
    added, then removed, each its own request (the group's member list is never loaded)."""
    from shared import db
    from shared.scim.api import ScimCall, handle_scim
    from shared.scim.tokens import create_scim_token

    with db.transaction() as conn:
        _, token = create_scim_token(conn, tenant, "bench", created_by="bench")
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/scim+json"}

    def call(method: str, path: str, body: dict[str, Any]) -> Any:
        return handle_scim(ScimCall(tenant.slug, method, path, "http://127.0.0.1/api/scim/v2/seed", {}, headers,
                                    json.dumps(body).encode()))

    created = call("POST", "/Groups", {"schemas": [GROUP_SCHEMA], "displayName": "Everyone"})
    group_id = created.body["id"]
    size = max(0, min(LARGE_GROUP_MEMBERS, len(users) - GROUP_PATCHES))
    _fill_group(database_url, tenant.id, group_id, users[:size])
    samples = []
    for user_id in users[size:size + GROUP_PATCHES]:
        for operation in ({"op": "add", "path": "members", "value": [{"value": str(user_id)}]},
                          {"op": "remove", "path": f'members[value eq "{user_id}"]'}):
            begun = time.perf_counter()
            answer = call("PATCH", f"/Groups/{group_id}", {"schemas": [PATCH_SCHEMA], "Operations": [operation]})
            samples.append(time.perf_counter() - begun)
            if int(answer.status) != 204:
                raise RuntimeError(f"group PATCH answered {answer.status}: {answer.body}")
    quantiles = statistics.quantiles(samples, n=100)
    return {"group_members": size, "member_patches": len(samples),
            "member_patch_p50_ms": round(statistics.median(samples) * 1000, 2),
            "member_patch_p99_ms": round(quantiles[98] * 1000, 2)}


def _lookups_at_scale(server_url: str, folder: Path) -> dict[str, Any]:
    import psycopg
    from scim2_models import ScimFilter, SearchRequest

    from local.postgres import create_database
    from shared import config, db
    from shared.identity.models import Actor, ActorKind
    from shared.migrations import migrate
    from shared.scim.provider import resource_type_named, scim_provider
    from shared.scim.storage import PostgresScimStorage
    from shared.tenants.registry import TenantChanges, create_tenant

    url = create_database(server_url, f"bench_seed_{uuid.uuid4().hex[:8]}")
    with psycopg.connect(url) as conn:
        migrate(conn)
    os.environ["DATABASE_URL"] = url
    config.reset()
    with db.transaction() as conn:
        tenant = create_tenant(conn, "seed", TenantChanges(display_name="Seed", add_domains=("bench.example",)))
    seeding = time.perf_counter()
    users = _seed_with_copy(url, tenant.id, SEED_USERS)
    seed_seconds = time.perf_counter() - seeding
    user_type = resource_type_named("User")
    model = scim_provider().model_for(user_type)
    picks = random.Random(11).choices(range(SEED_USERS), k=LOOKUPS)
    memory_before = _rss_kb(os.getpid())
    samples = []
    with db.transaction(tenant_id=tenant.id) as conn:
        storage = PostgresScimStorage(conn, tenant, Actor(ActorKind.SYSTEM, "bench"))
        for index in picks:
            request = SearchRequest[model](filter=ScimFilter[model](f'userName eq "seed{index}@bench.example"'))
            begun = time.perf_counter()
            page = storage.search([user_type], request)
            samples.append(time.perf_counter() - begun)
            assert page.total == 1
    memory_after = _rss_kb(os.getpid())
    os.environ["SCIM_CURSOR_SECRET"] = "bench"
    large_group = _large_group(url, tenant, users)
    db.close_pools()
    quantiles = statistics.quantiles(samples, n=100)
    return {
        "seeded_users": SEED_USERS, "seed_seconds": round(seed_seconds, 1), "lookups": LOOKUPS,
        "username_eq_p50_ms": round(statistics.median(samples) * 1000, 2),
        "username_eq_p99_ms": round(quantiles[98] * 1000, 2), "p99_target_ms": 10,
        "peak_rss_mb_before_lookups": round(memory_before / 1024, 1),
        "peak_rss_mb_after_lookups": round(memory_after / 1024, 1),
        "large_group": large_group,
    }


def measure() -> dict[str, Any]:
    import psycopg

    from local.azurite import start_azurite
    from local.postgres import create_database, start_embedded_postgres
    from shared import config, queues
    from shared.migrations import migrate

    with tempfile.TemporaryDirectory() as folder_name:
        folder = Path(folder_name)
        server_url = os.environ.get("DATABASE_URL") or start_embedded_postgres(folder / "pg", delete_on_exit=True)
        database_url = create_database(server_url, f"bench_scim_{uuid.uuid4().hex[:8]}")
        with psycopg.connect(database_url) as conn:
            migrate(conn)
        durability = _durability(database_url)
        azurite = start_azurite(None)
        os.environ["AzureWebJobsStorage"] = azurite.connection_string
        config.reset()
        queues.ensure_queues()
        ours, our_base, our_token = _our_server(database_url, azurite.connection_string, folder)
        theirs, their_base = _their_server()
        try:
            our_rates = _drive(our_base, our_token)
            our_memory = _rss_kb(ours.pid)
            their_rates = _drive(their_base, TOKEN)
        finally:
            _stop(ours)
            azurite.stop()
            _stop(theirs)
        at_scale = _lookups_at_scale(server_url, folder)
    return {
        "users": USERS, "operations": OPERATIONS, "durability": durability,
        "ours_ops_per_second": our_rates, "scim2_server_in_memory_ops_per_second": their_rates,
        "ratio_ours_to_theirs": {name: round(our_rates[name] / their_rates[name], 2) for name in our_rates},
        "ratio_target": 1.0,
        "our_host_peak_rss_mb": round(our_memory / 1024, 1),
        "in_process_at_scale": at_scale,
    }
