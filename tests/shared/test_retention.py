"""shared/retention.py: expired rows go, in bounded batches, across tenants."""

from __future__ import annotations

from datetime import timedelta

import psycopg

from shared import retention
from shared.retention import PurgeRule


def _audit_rows(database, ages_in_days: list[int]) -> None:
    with psycopg.connect(database) as conn:
        for age in ages_in_days:
            conn.execute(
                "INSERT INTO admin_audit (occurred_at, actor, action, source, outcome)"
                " VALUES (now() - make_interval(days => %s), 'test', 'x', 'cli', 'ok')", [age])


def _count(database) -> int:
    with psycopg.connect(database) as conn:
        return conn.execute("SELECT count(*) FROM admin_audit").fetchone()[0]


def test_rows_past_their_retention_are_purged_and_the_rest_kept(database, monkeypatch):
    monkeypatch.setenv("ADMIN_AUDIT_RETENTION_DAYS", "30")
    _audit_rows(database, [1, 29, 31, 400])
    assert retention.purge_expired()["admin_audit"] == 2
    assert _count(database) == 2


def test_applied_directory_events_go_after_their_retention_and_unfinished_ones_stay(database, make_tenant):
    tenant = make_tenant("acme")
    with psycopg.connect(database) as conn:
        for number, (status, age) in enumerate([("applied", 31), ("stale", 31), ("refused", 31), ("applied", 29),
                                                ("pending", 90), ("failed", 90), ("unmatched", 90)]):
            conn.execute(
                "INSERT INTO workos_events (id, event, created_at, payload, received_via, tenant_id, status,"
                " applied_at) VALUES (%s, 'dsync.user.created', now(), '{}', 'webhook', %s, %s,"
                " CASE WHEN %s <> 'pending' AND %s <> 'unmatched' THEN now() - make_interval(days => %s) END)",
                [f"event_{number}", None if status == "unmatched" else tenant.id, status, status, status, age])
    assert retention.purge_expired()["workos_events"] == 3
    with psycopg.connect(database) as conn:
        kept = sorted(row[0] for row in conn.execute("SELECT status FROM workos_events"))
    assert kept == ["applied", "failed", "pending", "unmatched"]


def test_a_backlog_is_purged_in_bounded_batches(database):
    _audit_rows(database, [10] * 7)
    rule = PurgeRule("admin_audit", "occurred_at", lambda: timedelta(days=1))
    statements: list[int] = []
    original = retention._purge_batch

    def counting(rule, batch):
        deleted = original(rule, batch)
        statements.append(deleted)
        return deleted

    retention._purge_batch = counting
    try:
        assert retention.purge_expired(batch=3, rules=[rule]) == {"admin_audit": 7}
    finally:
        retention._purge_batch = original
    assert statements == [3, 3, 1]


def test_the_time_budget_stops_a_run_and_the_next_run_goes_on(database):
    _audit_rows(database, [10] * 4)
    rule = PurgeRule("admin_audit", "occurred_at", lambda: timedelta(days=1))
    assert retention.purge_expired(batch=2, budget_seconds=0, rules=[rule]) == {"admin_audit": 0}
    assert retention.purge_expired(batch=2, rules=[rule]) == {"admin_audit": 4}


def test_purging_works_across_tenants_in_tenant_tables(make_tenant, database):
    from shared import db
    from shared.identity import store
    from shared.identity.models import Actor, ActorKind, Channel, PersonClaims

    for slug in ("acme", "beta"):
        tenant = make_tenant(slug)
        with db.transaction() as conn:
            store.sync_person(conn, tenant, PersonClaims(Channel.SCIM, "scim", "u", email=f"u@{slug}.example"),
                              Actor(ActorKind.SYSTEM, "t"))
    with psycopg.connect(database) as conn:
        conn.execute("UPDATE user_identities SET last_seen_at = now() - interval '2 days'")
    rule = PurgeRule("user_identities", "last_seen_at", lambda: timedelta(days=1))
    assert retention.purge_expired(rules=[rule]) == {"user_identities": 2}
