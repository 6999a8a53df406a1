"""Applying Directory Sync events (shared/directory/apply.py): what each event type does to the
identity store, tombstones, refusals, and the one-applier-per-directory lease."""

from __future__ import annotations

from datetime import timedelta

from shared import db
from shared.directory import apply
from shared.identity import store
from shared.identity.changelog import changes_after
from shared.identity.models import Channel
from tests.directory.conftest import deliver, drain, state_of, statuses


def test_users_groups_and_members_land_in_the_identity_store_with_their_roles(make_directory):
    tenant, directory = make_directory("acme")
    ann = directory.user("ann", role="admin", first_name="Ann", last_name="Lee")
    sales = directory.group("sales")
    events = [directory.activated(), directory.event("dsync.user.created", ann),
              directory.event("dsync.group.created", sales), directory.membership(True, ann, sales)]
    deliver(events)
    assert drain(tenant, directory).applied == 4
    assert state_of(tenant, directory) == {
        "users": [("ann", "ann", "Ann", "active", ["admin"])], "groups": [("sales", "Sales", "active")],
        "members": [("sales", "ann")]}
    with db.transaction() as conn:
        user = store.find_user(conn, tenant, "ann@acme.example")
        identities = store.user_identities(conn, tenant, user.id)
        log = changes_after(conn, tenant.id, 0)
    assert (user.display_name, user.created_by_channel) == ("Ann Lee", "workos")
    assert [(row["channel"], row["issuer"], row["external_id"]) for row in identities] == [
        ("workos", directory.id, ann["id"])]
    assert {entry.actor_id for entry in log} == {f"workos:{directory.id}"}
    assert [status for status, _ in statuses([e["id"] for e in events]).values()] == ["applied"] * 4


def test_inactive_and_suspended_users_are_deactivated_and_come_back_when_active(make_directory):
    tenant, directory = make_directory("acme")
    deliver([directory.event("dsync.user.created", directory.user("ann")),
             directory.event("dsync.user.created", directory.user("bo"))])
    drain(tenant, directory)
    deliver([directory.event("dsync.user.updated", directory.user("ann", state="inactive")),
             directory.event("dsync.user.updated", directory.user("bo", state="suspended"))])
    drain(tenant, directory)
    assert [row[3] for row in state_of(tenant, directory)["users"]] == ["inactive", "inactive"]
    deliver([directory.event("dsync.user.updated", directory.user("ann"))])
    drain(tenant, directory)
    assert [row[3] for row in state_of(tenant, directory)["users"]] == ["active", "inactive"]


def test_an_older_event_never_overwrites_a_newer_state(make_directory):
    tenant, directory = make_directory("acme")
    older = directory.event("dsync.user.created", directory.user("ann", first_name="Old"))
    newer = directory.event("dsync.user.updated", directory.user("ann", first_name="New"))
    deliver([newer])
    drain(tenant, directory)
    deliver([older])
    drain(tenant, directory)
    assert state_of(tenant, directory)["users"][0][2] == "New"
    assert statuses([older["id"]])[older["id"]] == ("stale", "a newer state of the user is known")


def test_dsync_deleted_deactivates_every_user_and_a_late_user_stays_inactive(make_directory):
    tenant, directory = make_directory("acme")
    late = directory.user("late")  # described before the deletion, delivered after it
    deliver([directory.event("dsync.user.created", directory.user("ann")),
             directory.event("dsync.user.created", directory.user("bo"))])
    drain(tenant, directory)
    deletion = directory.deleted()
    deliver([deletion])
    drain(tenant, directory)
    deliver([directory.event("dsync.user.created", late), directory.activated()])
    drain(tenant, directory)
    assert [(row[0], row[3]) for row in state_of(tenant, directory)["users"]] == [
        ("ann", "inactive"), ("bo", "inactive"), ("late", "inactive")]
    assert statuses([deletion["id"]])[deletion["id"]][0] == "applied"


def test_a_deleted_group_ends_its_memberships_and_cannot_come_back(make_directory):
    tenant, directory = make_directory("acme")
    ann, sales = directory.user("ann"), directory.group("sales")
    deliver([directory.event("dsync.user.created", ann), directory.event("dsync.group.created", sales),
             directory.membership(True, ann, sales)])
    drain(tenant, directory)
    late_rename = directory.event("dsync.group.updated", directory.group("sales", name="Renamed"))
    deliver([directory.event("dsync.group.deleted", directory.group("sales"))])
    drain(tenant, directory)
    deliver([late_rename, directory.membership(True, ann, sales)])
    drain(tenant, directory)
    assert state_of(tenant, directory)["groups"] == [("sales", "Sales", "deleted")]
    assert state_of(tenant, directory)["members"] == []
    assert statuses([late_rename["id"]])[late_rename["id"]] == ("stale", "the group was deleted")


def test_a_deleted_user_cannot_come_back_through_a_late_update(make_directory):
    tenant, directory = make_directory("acme")
    created = directory.event("dsync.user.created", directory.user("ann"))
    deleted = directory.event("dsync.user.deleted", directory.user("ann", state="inactive"))
    late = directory.event("dsync.user.updated", directory.user("ann"))  # newer, yet after the tombstone
    deliver([created, deleted])
    drain(tenant, directory)
    deliver([late])
    drain(tenant, directory)
    assert [row[3] for row in state_of(tenant, directory)["users"]] == ["deleted"]


def test_a_membership_that_arrives_before_its_user_is_applied_when_the_user_appears(make_directory):
    tenant, directory = make_directory("acme")
    ann, sales = directory.user("ann"), directory.group("sales")
    created = directory.event("dsync.user.created", ann)
    added = directory.membership(True, ann, sales)
    with db.transaction() as conn:  # the group exists already, the user not yet
        store.upsert_group(conn, tenant, Channel.WORKOS, directory.id, sales["id"], "Sales",
                           apply.directory_actor(directory.id))
    deliver([added])
    drain(tenant, directory)
    assert state_of(tenant, directory)["members"] == [("sales", "ann")]  # the event carries the user
    deliver([created])
    drain(tenant, directory)
    assert state_of(tenant, directory)["members"] == [("sales", "ann")]


def test_a_tenant_provisioned_by_scim_refuses_directory_users_with_the_reason(make_directory):
    tenant, directory = make_directory("acme", provisioning="scim")
    event = directory.event("dsync.user.created", directory.user("ann"))
    deliver([event])
    drain(tenant, directory)
    status, outcome = statuses([event["id"]])[event["id"]]
    assert status == "refused"
    assert "scim" in outcome
    assert state_of(tenant, directory)["users"] == []


def test_one_applier_per_directory_until_its_lease_expires(make_directory):
    tenant, directory = make_directory("acme")
    deliver([directory.event("dsync.user.created", directory.user("ann"))])
    with db.transaction() as conn:
        assert apply.acquire_lease(conn, tenant, directory.id, "another-instance")
    assert drain(tenant, directory) == apply.DrainResult(0, busy=True)
    with db.transaction(tenant_id=tenant.id) as conn:  # the other instance died: its lease runs out
        conn.execute("UPDATE workos_directories SET lease_expires_at = now() - %s", [timedelta(seconds=1)])
    assert drain(tenant, directory).applied == 1
    with db.transaction(tenant_id=tenant.id) as conn:
        assert conn.execute("SELECT lease_holder FROM workos_directories").fetchone() == (None,)


def test_a_bad_event_is_marked_failed_and_the_others_still_apply(make_directory, monkeypatch):
    tenant, directory = make_directory("acme")
    good = directory.event("dsync.user.created", directory.user("ann"))
    bad = directory.event("dsync.group.created", directory.group("sales"))
    deliver([good, bad])
    real_upsert = store.upsert_group

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(store, "upsert_group", broken)
    drain(tenant, directory)
    monkeypatch.setattr(store, "upsert_group", real_upsert)
    assert statuses([good["id"], bad["id"]]) == {
        good["id"]: ("applied", statuses([good["id"]])[good["id"]][1]), bad["id"]: ("failed", "RuntimeError: boom")}
