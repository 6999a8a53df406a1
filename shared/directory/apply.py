"""Applying Directory Sync events to the identity store: in any order, any number of times.

WorkOS does not promise order, and webhooks and the Events API may both deliver an event. So what a
directory said last is kept per entity with its version ("registers", migration 0005), and the
identity store is made to follow the registers:

- a user's and a group's version is (``updated_at``, the event's ``created_at``, the event id); a
  membership's is (the event's ``created_at``, the event id). An event older than the register is
  ``stale`` and changes nothing; the newest statement in a batch wins. A user or group changes only
  with a later ``updated_at`` than the register's: the same snapshot delivered again (the
  ``user_added`` events carry it) is not applied twice;
- a deleted user, a deleted group and a deleted directory are tombstones: final, whatever arrives
  later (a late ``user.updated`` cannot bring a deleted user back);
- a user exists in the store once any event has described them (the ``user_added`` events carry
  the user and the group too); they are active when their state is ``active`` and their directory
  is not deleted (``dsync.deleted`` deactivates every user of the directory, and a user described
  late is created inactive);
- a membership is in the store when its register says present and both its user and its group are
  live: a membership that arrives before its user or group is applied when they appear, and ends
  when either is deleted;
- the identity store's rules still decide (tests/identity/test_rules.py): a tenant whose
  authoritative channel is not ``workos`` gets its users linked and filled, nothing more, and what
  the rules refuse is recorded as ``refused`` with the reason.

So any permutation and duplication of a stream ends in the state of the ordered stream
(tests/directory/test_convergence.py). ``drain_directory`` applies a directory's pending events in
batches while holding the directory's lease (one applier per directory, whatever the number of
instances); each batch is one transaction with its inbox marks.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from shared import db
from shared.directory import inbox
from shared.directory.events import (
    DIRECTORY_EVENTS,
    GROUP_EVENTS,
    MEMBERSHIP_EVENTS,
    USER_EVENTS,
    DirectoryEvent,
    parse_time,
)
from shared.identity import store
from shared.identity.models import Actor, ActorKind, Channel, IdentityError, Outcome, PersonClaims
from shared.tenants.models import Tenant

log = logging.getLogger(__name__)

LEASE_SECONDS = 120
BATCH_SIZE = 500
LIVE_OUTCOMES = (Outcome.CREATED, Outcome.RESTORED)
# What a directory snapshot states in full: a name or email it no longer has is cleared.
SNAPSHOT_FIELDS = frozenset({"primary_email", "given_name", "family_name", "display_name"})


@dataclass(frozen=True, order=True)
class Version:
    updated_at: datetime
    created_at: datetime
    event_id: str


@dataclass(frozen=True)
class Statement:
    """What one event says about one entity (an embedded user or group has no event of its own)."""

    key: Any
    version: Version
    event_id: str | None
    deleted: bool = False
    present: bool = True
    snapshot: dict[str, Any] | None = None


def directory_actor(directory_id: str) -> Actor:
    return Actor(ActorKind.IDP, f"workos:{directory_id}")


class _Outcomes:
    def __init__(self) -> None:
        self.by_event: dict[str, inbox.Outcome] = {}

    def set(self, event_id: str | None, status: str, detail: str) -> None:
        if event_id is not None:
            self.by_event[event_id] = inbox.Outcome(event_id, status, detail)

    def report(self, decision: _Decision, status: str, detail: str) -> None:
        for event_id in decision.reported:
            self.set(event_id, status, detail)


# --- the statements of a batch ---------------------------------------------------------------------


def _entity_statements(events: list[DirectoryEvent], kinds: tuple[str, ...], embedded: str, deletion: str
                       ) -> dict[str, list[Statement]]:
    """What the events say about users (or groups): their own events, and the snapshot each membership
    event carries (``embedded``: "user" or "group"), which has no event of its own to mark."""
    statements: dict[str, list[Statement]] = defaultdict(list)
    for event in events:
        if event.event in kinds:
            entity, event_id = event.data, event.id
        elif event.event in MEMBERSHIP_EVENTS:
            entity, event_id = event.data[embedded], None
        else:
            continue
        version = Version(parse_time(entity["updated_at"], "updated_at"), event.created_at, event.id)
        statements[entity["id"]].append(Statement(
            entity["id"], version, event_id, deleted=event.event == deletion, snapshot=entity))
    return statements


def _user_statements(events: list[DirectoryEvent]) -> dict[str, list[Statement]]:
    return _entity_statements(events, USER_EVENTS, "user", "dsync.user.deleted")


def _group_statements(events: list[DirectoryEvent]) -> dict[str, list[Statement]]:
    return _entity_statements(events, GROUP_EVENTS, "group", "dsync.group.deleted")


def _membership_statements(events: list[DirectoryEvent]) -> dict[tuple[str, str], list[Statement]]:
    statements: dict[tuple[str, str], list[Statement]] = defaultdict(list)
    for event in events:
        if event.event in MEMBERSHIP_EVENTS:
            key = (event.data["group"]["id"], event.data["user"]["id"])
            version = Version(event.created_at, event.created_at, event.id)
            statements[key].append(Statement(key, version, event.id, present=event.event == "dsync.group.user_added"))
    return statements


@dataclass(frozen=True)
class _Decision:
    winner: Statement | None  # None: nothing to change
    deleted: bool
    # The events that described the winning state (a user.created and the user_added that embeds
    # the same snapshot): each is reported with the winner's outcome.
    reported: tuple[str, ...] = ()


def _decide(statements: list[Statement], register: tuple[Version, bool] | None, outcomes: _Outcomes,
            noun: str) -> _Decision:
    """Which statement, if any, changes the entity; marks the events that lose."""
    if register is not None and register[1]:
        for statement in statements:
            outcomes.set(statement.event_id, "stale", f"the {noun} was deleted")
        return _Decision(None, True)
    deletions = [statement for statement in statements if statement.deleted]
    if deletions:
        winner = max(deletions, key=lambda statement: statement.version)
        for statement in statements:
            if not statement.deleted:
                outcomes.set(statement.event_id, "stale", f"the {noun} was deleted")
        return _Decision(winner, True, tuple(s.event_id for s in deletions if s.event_id))
    winner = max(statements, key=lambda statement: statement.version)
    # A user or group changes only with a later updated_at: the same snapshot again (a user_added
    # event carries the user as it was) changes nothing. Memberships have no updated_at of their own.
    known = register[0] if register is not None else None
    if known is not None and (winner.version <= known if noun == "membership"
                              else winner.version.updated_at <= known.updated_at):
        for statement in statements:
            outcomes.set(statement.event_id, "stale", f"a newer state of the {noun} is known")
        return _Decision(None, False)
    reported = []
    for statement in statements:
        if statement is winner or statement.version.updated_at == winner.version.updated_at:
            reported.append(statement.event_id)
        else:
            outcomes.set(statement.event_id, "stale", f"superseded by a newer event about the {noun}")
    return _Decision(winner, False, tuple(event_id for event_id in reported if event_id))


# --- registers -------------------------------------------------------------------------------------


def _entity_registers(conn: psycopg.Connection, table: str, key_column: str, directory_id: str,
                      keys: list[str]) -> dict[str, tuple[Version, bool]]:
    # One index lookup per key (see _membership_registers).
    rows = conn.execute(
        f"SELECT r.{key_column}, r.updated_at, r.event_created_at, r.event_id, r.deleted"  # noqa: S608 - fixed names
        f" FROM unnest(%s::text[]) AS k(key) CROSS JOIN LATERAL (SELECT * FROM {table} t"
        f" WHERE t.directory_id = %s AND t.{key_column} = k.key OFFSET 0) r", [keys, directory_id]).fetchall()
    return {row[0]: (Version(row[1], row[2], row[3]), row[4]) for row in rows}


def _write_entity_registers(conn: psycopg.Connection, table: str, key_column: str, tenant: Tenant,
                            directory_id: str, decided: list[tuple[str, _Decision]]) -> None:
    rows = [(key, decision.winner.version, decision.deleted) for key, decision in decided if decision.winner]
    if not rows:
        return
    conn.execute(
        f"INSERT INTO {table} (tenant_id, directory_id, {key_column}, updated_at, event_created_at, event_id, deleted)"  # noqa: S608
        f" SELECT %s, %s, r.key, r.updated_at, r.created_at, r.event_id, r.deleted"
        f" FROM jsonb_to_recordset(%s)"
        f" AS r(key text, updated_at timestamptz, created_at timestamptz, event_id text, deleted boolean)"
        f" ON CONFLICT (directory_id, {key_column}) DO UPDATE SET updated_at = EXCLUDED.updated_at,"
        f" event_created_at = EXCLUDED.event_created_at, event_id = EXCLUDED.event_id, deleted = EXCLUDED.deleted",
        [tenant.id, directory_id, Jsonb([
            {"key": key, "updated_at": version.updated_at.isoformat(), "created_at": version.created_at.isoformat(),
             "event_id": version.event_id, "deleted": deleted} for key, version, deleted in rows])])


def _decide_entities(conn: psycopg.Connection, tenant: Tenant, directory_id: str,
                     statements: dict[str, list[Statement]], noun: str, outcomes: _Outcomes
                     ) -> list[tuple[str, _Decision]]:
    """Decide each user's (or group's) statements against its register, and write the registers."""
    if not statements:
        return []
    table, key_column = f"workos_directory_{noun}s", f"{noun}_id"
    registers = _entity_registers(conn, table, key_column, directory_id, sorted(statements))
    decided = [(key, _decide(items, registers.get(key), outcomes, noun)) for key, items in statements.items()]
    _write_entity_registers(conn, table, key_column, tenant, directory_id, decided)
    return decided


# --- users -------------------------------------------------------------------------------------------


def person_claims(directory_id: str, user: dict[str, Any], *, directory_deleted: bool) -> PersonClaims:
    roles = [role["slug"] for role in user.get("roles") or []]
    if not roles and user.get("role"):
        roles = [user["role"]["slug"]]
    names = " ".join(part for part in (user.get("first_name"), user.get("last_name")) if part)
    return PersonClaims(
        Channel.WORKOS, directory_id, user["id"], email=user.get("email"), given_name=user.get("first_name"),
        family_name=user.get("last_name"), display_name=user.get("name") or names or None,
        role_slugs=tuple(sorted(set(roles))), active=user["state"] == "active" and not directory_deleted,
        clears_absent=SNAPSHOT_FIELDS)


def _apply_users(conn: psycopg.Connection, tenant: Tenant, directory_id: str, events: list[DirectoryEvent],
                 directory_deleted: bool, outcomes: _Outcomes) -> set[str]:
    """Returns the users who became live (created or restored)."""
    decided = _decide_entities(conn, tenant, directory_id, _user_statements(events), "user", outcomes)
    if not decided:
        return set()
    actor = directory_actor(directory_id)
    # A deleted user is written as the deletion describes them, then tombstoned: so the tombstone is
    # the same whether the deletion came last, first, or alone.
    winners = [decision for _, decision in decided if decision.winner]
    claims = [person_claims(directory_id, decision.winner.snapshot,
                            directory_deleted=directory_deleted or decision.deleted) for decision in winners]
    became_live: set[str] = set()
    for decision, result in zip(winners, store.sync_people(conn, tenant, claims, actor), strict=True):
        if isinstance(result, IdentityError):
            outcomes.report(decision, "refused", str(result))
        elif decision.deleted:
            try:
                store.delete_user(conn, tenant, result.user.id, Channel.WORKOS, actor)
                outcomes.report(decision, "applied", f"user {result.user.id} deleted")
            except IdentityError as error:
                outcomes.report(decision, "refused", str(error))
        else:
            outcomes.report(decision, "applied", f"user {result.user.id} {result.outcome.value}")
            if result.outcome in LIVE_OUTCOMES:
                became_live.add(decision.winner.key)
    return became_live


# --- groups ------------------------------------------------------------------------------------------


def _apply_groups(conn: psycopg.Connection, tenant: Tenant, directory_id: str, events: list[DirectoryEvent],
                  outcomes: _Outcomes) -> set[str]:
    """Returns the groups that were created."""
    decided = _decide_entities(conn, tenant, directory_id, _group_statements(events), "group", outcomes)
    if not decided:
        return set()
    actor = directory_actor(directory_id)
    created: set[str] = set()
    for key, decision in decided:
        statement = decision.winner
        if statement is None:
            continue
        try:
            group, outcome = store.upsert_group(
                conn, tenant, Channel.WORKOS, directory_id, key, statement.snapshot["name"], actor)
            if decision.deleted:  # written as the deletion describes it, then tombstoned (as users)
                store.delete_group(conn, tenant, group.id, Channel.WORKOS, actor)
                outcomes.report(decision, "applied", f"group {group.id} deleted")
                continue
            outcomes.report(decision, "applied", f"group {group.id} {outcome.value}")
            if outcome is Outcome.CREATED:
                created.add(key)
        except IdentityError as error:
            outcomes.report(decision, "refused", str(error))
    return created


# --- memberships -------------------------------------------------------------------------------------


def _membership_registers(conn: psycopg.Connection, directory_id: str, keys: list[tuple[str, str]]
                          ) -> dict[tuple[str, str], tuple[Version, bool]]:
    # One index lookup per key, whatever the statistics say: a directory's first catch-up grows these
    # tables faster than autovacuum analyzes them, and a plan chosen for a small table (a join that
    # reads every register of the directory) would make each batch slower than the last. LATERAL
    # with OFFSET 0 keeps the subquery per key.
    rows = conn.execute(
        "SELECT m.group_id, m.user_id, m.event_created_at, m.event_id, m.present"
        " FROM jsonb_to_recordset(%s) AS k(group_id text, user_id text)"
        " CROSS JOIN LATERAL (SELECT * FROM workos_directory_memberships r WHERE r.directory_id = %s"
        "                     AND r.group_id = k.group_id AND r.user_id = k.user_id OFFSET 0) m",
        [Jsonb([{"group_id": group, "user_id": user} for group, user in keys]), directory_id]).fetchall()
    # "deleted" does not apply to memberships: the register's second field is unused (False).
    return {(row[0], row[1]): (Version(row[2], row[2], row[3]), False) for row in rows}


def _write_membership_registers(conn: psycopg.Connection, tenant: Tenant, directory_id: str,
                                winners: list[Statement]) -> None:
    if not winners:
        return
    conn.execute(
        "INSERT INTO workos_directory_memberships (tenant_id, directory_id, group_id, user_id, present,"
        " event_created_at, event_id)"
        " SELECT %s, %s, r.group_id, r.user_id, r.present, r.created_at, r.event_id"
        " FROM jsonb_to_recordset(%s)"
        " AS r(group_id text, user_id text, present boolean, created_at timestamptz, event_id text)"
        " ON CONFLICT (directory_id, group_id, user_id) DO UPDATE SET present = EXCLUDED.present,"
        " event_created_at = EXCLUDED.event_created_at, event_id = EXCLUDED.event_id",
        [tenant.id, directory_id, Jsonb([
            {"group_id": s.key[0], "user_id": s.key[1], "present": s.present,
             "created_at": s.version.created_at.isoformat(), "event_id": s.version.event_id} for s in winners])])


def _change_memberships(conn: psycopg.Connection, tenant: Tenant, directory_id: str,
                        pairs: list[tuple[str, str, bool]]) -> set[tuple[str, str]]:
    """Add (True) or remove (False) memberships whose user and group are live; returns the pairs
    that could be applied now (the others wait for their user or group)."""
    if not pairs:
        return set()
    users = store.users_by_identity(conn, tenant, Channel.WORKOS, directory_id, sorted({u for _, u, _ in pairs}))
    groups = store.groups_by_key(conn, tenant, Channel.WORKOS, directory_id, sorted({g for g, _, _ in pairs}))
    added: list[tuple[str, str]] = []
    removed: list[tuple[str, str]] = []
    done = set()
    for group_key, user_key, present in pairs:
        if group_key in groups and user_key in users:
            (added if present else removed).append((groups[group_key], users[user_key]))
            done.add((group_key, user_key))
    store.change_memberships(conn, tenant, Channel.WORKOS, directory_actor(directory_id), added=added, removed=removed)
    return done


def _apply_memberships(conn: psycopg.Connection, tenant: Tenant, directory_id: str, events: list[DirectoryEvent],
                       outcomes: _Outcomes) -> None:
    statements = _membership_statements(events)
    if not statements:
        return
    registers = _membership_registers(conn, directory_id, sorted(statements))
    winners = [decision.winner for key, items in statements.items()
               if (decision := _decide(items, registers.get(key), outcomes, "membership")).winner]
    _write_membership_registers(conn, tenant, directory_id, winners)
    try:
        done = _change_memberships(conn, tenant, directory_id, [(*s.key, s.present) for s in winners])
    except IdentityError as error:
        for statement in winners:
            outcomes.set(statement.event_id, "refused", str(error))
        return
    for statement in winners:
        verb = "added" if statement.present else "removed"
        detail = f"member {verb}" if statement.key in done else f"member {verb} (applied when user and group exist)"
        outcomes.set(statement.event_id, "applied", detail)


def _reconcile_new(conn: psycopg.Connection, tenant: Tenant, directory_id: str, users: set[str],
                   groups: set[str]) -> None:
    """Memberships recorded earlier for users and groups that only now exist."""
    if not users and not groups:
        return
    rows = conn.execute(
        "SELECT group_id, user_id FROM workos_directory_memberships WHERE directory_id = %s AND present"
        " AND (user_id = ANY(%s) OR group_id = ANY(%s))", [directory_id, sorted(users), sorted(groups)]).fetchall()
    try:
        _change_memberships(conn, tenant, directory_id, [(group_id, user_id, True) for group_id, user_id in rows])
    except IdentityError as error:
        log.warning("directory %s: memberships not applied: %s", directory_id, error)


# --- the directory itself ------------------------------------------------------------------------------


def _apply_directory_events(conn: psycopg.Connection, directory_id: str, events: list[DirectoryEvent],
                            outcomes: _Outcomes) -> tuple[bool, bool]:
    """Returns (the directory is deleted, it was deleted by this batch)."""
    # No row lock: the lease makes this the directory's only applier.
    state = conn.execute("SELECT state FROM workos_directories WHERE id = %s", [directory_id]).fetchone()
    deleted_before = state is not None and state[0] == "deleted"
    deleting = [event for event in events if event.event == "dsync.deleted"]
    for event in events:
        if event.event == "dsync.activated":
            outcomes.set(event.id, "stale" if deleted_before or deleting else "applied",
                         "the directory was deleted" if deleted_before or deleting else "directory linked to tenant")
    if deleted_before:
        for event in deleting:
            outcomes.set(event.id, "stale", "the directory was already deleted")
        return True, False
    if not deleting:
        activations = [event.created_at for event in events if event.event == "dsync.activated"]
        if activations:
            conn.execute("UPDATE workos_directories SET activated_at = coalesce(activated_at, %s) WHERE id = %s",
                         [min(activations), directory_id])
        return False, False
    conn.execute("UPDATE workos_directories SET state = 'deleted', deleted_at = %s WHERE id = %s",
                 [deleting[0].created_at, directory_id])
    for event in deleting:
        outcomes.set(event.id, "applied", "directory deleted: its users deactivated")
    return True, True


def apply_batch(conn: psycopg.Connection, tenant: Tenant, directory_id: str, events: list[DirectoryEvent]
                ) -> list[inbox.Outcome]:
    """Apply events of one directory in the caller's transaction (as the tenant); returns the
    outcome of each, in order. The directory's row must exist (``acquire_lease`` makes it)."""
    db.use_tenant(conn, tenant.id)
    outcomes = _Outcomes()
    directory_deleted, deleted_now = _apply_directory_events(conn, directory_id, events, outcomes)
    new_users = _apply_users(conn, tenant, directory_id, events, directory_deleted, outcomes)
    new_groups = _apply_groups(conn, tenant, directory_id, events, outcomes)
    _apply_memberships(conn, tenant, directory_id, events, outcomes)
    _reconcile_new(conn, tenant, directory_id, new_users, new_groups)
    if deleted_now:
        try:
            store.deactivate_identities(conn, tenant, Channel.WORKOS, directory_id, directory_actor(directory_id))
        except IdentityError as error:
            for event in events:
                if event.event == "dsync.deleted":
                    outcomes.set(event.id, "refused", str(error))
    for event in events:
        if event.event not in DIRECTORY_EVENTS and event.id not in outcomes.by_event:
            outcomes.set(event.id, "stale", "nothing to change")
    return [outcomes.by_event[event.id] for event in events]


# --- one applier per directory -------------------------------------------------------------------------


def lease_holder() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def acquire_lease(conn: psycopg.Connection, tenant: Tenant, directory_id: str, holder: str) -> bool:
    """Take the directory's lease (creating its row) unless another holder's lease is live; taking it
    clears the mark of an outstanding dsync-apply message (``inbox.request_apply``)."""
    db.use_tenant(conn, tenant.id)
    row = conn.execute(
        "INSERT INTO workos_directories AS d (id, tenant_id, organization_id, lease_holder, lease_expires_at)"
        " VALUES (%s, %s, %s, %s, now() + make_interval(secs => %s))"
        " ON CONFLICT (id) DO UPDATE SET lease_holder = EXCLUDED.lease_holder,"
        " lease_expires_at = EXCLUDED.lease_expires_at, apply_requested_at = NULL"
        " WHERE d.lease_holder IS NULL OR d.lease_expires_at < now() OR d.lease_holder = EXCLUDED.lease_holder"
        " RETURNING 1",
        [directory_id, tenant.id, tenant.workos_organization_id or "", holder, LEASE_SECONDS]).fetchone()
    return row is not None


def renew_lease(conn: psycopg.Connection, directory_id: str, holder: str) -> bool:
    row = conn.execute(
        "UPDATE workos_directories SET lease_expires_at = now() + make_interval(secs => %s)"
        " WHERE id = %s AND lease_holder = %s RETURNING 1", [LEASE_SECONDS, directory_id, holder]).fetchone()
    return row is not None


def release_lease(conn: psycopg.Connection, directory_id: str, holder: str) -> None:
    conn.execute("UPDATE workos_directories SET lease_holder = NULL, lease_expires_at = NULL"
                 " WHERE id = %s AND lease_holder = %s RETURNING 1", [directory_id, holder]).fetchall()


@dataclass(frozen=True)
class DrainResult:
    applied: int
    busy: bool = False  # another applier holds the lease
    more: bool = False  # the time budget ran out with events still pending


def _apply_or_isolate(conn: psycopg.Connection, tenant: Tenant, directory_id: str, events: list[DirectoryEvent]
                      ) -> list[inbox.Outcome]:
    """The batch in one savepoint; if it fails unexpectedly, each event alone, so one bad event is
    marked failed with its error and the others still apply."""
    try:
        with conn.transaction():
            return apply_batch(conn, tenant, directory_id, events)
    except (psycopg.errors.QueryCanceled, psycopg.OperationalError):
        raise  # not the events' fault: retry the whole batch later
    except Exception:
        log.exception("directory %s: a batch of %d events failed; applying them one by one", directory_id, len(events))
    outcomes = []
    for event in events:
        try:
            with conn.transaction():
                outcomes.extend(apply_batch(conn, tenant, directory_id, [event]))
        except (psycopg.errors.QueryCanceled, psycopg.OperationalError):
            raise
        except Exception as error:  # recorded, visible with `directory events --status failed`
            log.exception("directory %s: event %s failed", directory_id, event.id)
            outcomes.append(inbox.Outcome(event.id, "failed", f"{type(error).__name__}: {error}"))
    return outcomes


def drain_directory(tenant_id: str, directory_id: str, *, budget_seconds: float = 50.0, batch_size: int = BATCH_SIZE,
                    clock: Callable[[], float] = time.monotonic,
                    known: dict[str, DirectoryEvent] | None = None) -> DrainResult:
    """Apply the directory's pending events, oldest first, while holding its lease (``known``: events
    the caller has in memory already, by id, which need not be read back from the inbox)."""
    from shared.tenants.registry import get_tenant_by_id

    holder = lease_holder()
    with db.transaction(tenant_id=tenant_id) as conn:
        tenant = get_tenant_by_id(conn, tenant_id)
        if not acquire_lease(conn, tenant, directory_id, holder):
            return DrainResult(0, busy=True)
    deadline = clock() + budget_seconds
    applied = 0
    position: tuple[datetime, str] | None = None  # where this drain is; a new drain starts over
    try:
        while True:
            # Renewed in a transaction of its own: the batch must not hold the directory's row, which
            # webhooks of the directory lock for a moment (inbox.request_apply).
            with db.transaction(tenant_id=tenant_id) as conn:
                if not renew_lease(conn, directory_id, holder):
                    log.warning("directory %s: lease lost; another applier goes on", directory_id)
                    return DrainResult(applied, busy=True)
            with db.transaction(tenant_id=tenant_id) as conn:
                events = inbox.pending_events(conn, tenant_id, directory_id, limit=batch_size, after=position,
                                               known=known)
                if not events:
                    return DrainResult(applied)
                inbox.mark(conn, _apply_or_isolate(conn, tenant, directory_id, events))
            applied += len(events)
            position = (events[-1].created_at, events[-1].id)
            if clock() >= deadline:
                return DrainResult(applied, more=True)
    finally:
        with db.transaction(tenant_id=tenant_id) as conn:
            release_lease(conn, directory_id, holder)
