"""The change log's contract (shared/identity/changelog.py), under concurrent writers."""

from __future__ import annotations

import threading

import psycopg
import pytest

from shared import db
from shared.identity.changelog import Change, append_changes, changes_after
from shared.identity.models import Actor, ActorKind

ACTOR = Actor(ActorKind.SYSTEM, "test")


def _append(tenant, count: int = 1) -> list[int]:
    with db.transaction(tenant_id=tenant.id) as conn:
        return append_changes(conn, tenant.id, ACTOR, [
            Change("user", "00000000-0000-0000-0000-000000000001", "updated") for _ in range(count)])


def _seqs(tenant) -> list[int]:
    with db.transaction(tenant_id=tenant.id) as conn:
        return [entry.seq for entry in changes_after(conn, tenant.id, 0, limit=100_000)]


def test_sequence_numbers_are_per_tenant_and_start_at_one(make_tenant):
    acme, beta = make_tenant("acme"), make_tenant("beta")
    assert _append(acme, 2) == [1, 2]
    assert _append(beta) == [1]
    assert _append(acme) == [3]


def test_a_rolled_back_change_leaves_no_entry_and_no_gap(make_tenant):
    acme = make_tenant("acme")
    _append(acme)

    def append_then_fail() -> None:
        with db.transaction(tenant_id=acme.id) as conn:
            append_changes(conn, acme.id, ACTOR, [Change("user", "00000000-0000-0000-0000-000000000001", "x")])
            raise RuntimeError("rolled back")

    with pytest.raises(RuntimeError):
        append_then_fail()
    assert _append(acme) == [2]
    assert _seqs(acme) == [1, 2]


def test_concurrent_writers_get_gapless_numbers(make_tenant, monkeypatch):
    monkeypatch.setenv("DB_POOL_MAX_SIZE", "8")
    acme = make_tenant("acme")
    errors: list[BaseException] = []

    def writer() -> None:
        try:
            for _ in range(25):
                _append(acme)
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=writer) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert _seqs(acme) == list(range(1, 151))


def test_a_later_number_never_becomes_visible_before_an_earlier_one(make_tenant, database):
    acme = make_tenant("acme")
    _append(acme)
    # Writer A takes number 2 and holds its transaction open; writer B must wait for A to commit,
    # so a reader never sees 3 while 2 is still invisible.
    first_holds = threading.Event()
    second_done = threading.Event()
    seen_while_first_open: list[list[int]] = []

    def first_writer() -> None:
        with db.transaction(tenant_id=acme.id) as conn:
            append_changes(conn, acme.id, ACTOR, [Change("user", "00000000-0000-0000-0000-000000000001", "a")])
            first_holds.set()
            second_done.wait(1.0)  # B is blocked meanwhile: it cannot finish
            seen_while_first_open.append(_seqs(acme))

    def second_writer() -> None:
        first_holds.wait(10)
        _append(acme)
        second_done.set()

    threads = [threading.Thread(target=first_writer), threading.Thread(target=second_writer)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert seen_while_first_open == [[1]]  # neither 2 (uncommitted) nor 3 (blocked) was visible
    assert _seqs(acme) == [1, 2, 3]


def test_the_app_cannot_rewrite_or_delete_entries(make_tenant):
    acme = make_tenant("acme")
    _append(acme)
    for statement in ("UPDATE change_log SET action = 'forged'", "DELETE FROM change_log"):
        with pytest.raises(psycopg.errors.InsufficientPrivilege), db.transaction(tenant_id=acme.id) as conn:
            conn.execute(statement)


def test_changes_after_pages_in_order(make_tenant):
    acme = make_tenant("acme")
    _append(acme, 5)
    with db.transaction(tenant_id=acme.id) as conn:
        first = changes_after(conn, acme.id, 0, limit=2)
        rest = changes_after(conn, acme.id, first[-1].seq, limit=10)
    assert [entry.seq for entry in first + rest] == [1, 2, 3, 4, 5]
