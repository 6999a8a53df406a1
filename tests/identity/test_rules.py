"""The identity store's written rules (shared/identity/store.py), one test per rule, named after it."""

from __future__ import annotations

import pytest

from shared import db
from shared.identity import store
from shared.identity.changelog import changes_after
from shared.identity.models import (
    Actor,
    ActorKind,
    Channel,
    GroupDeleted,
    IdentityConflict,
    NotAuthoritative,
    NotProvisioned,
    Outcome,
    PersonClaims,
    UserStatus,
)

SCIM_ACTOR = Actor(ActorKind.SCIM_TOKEN, "token-1")
SSO_ACTOR = Actor(ActorKind.SSO, "workos")
OID = "3f2504e0-4f89-11d3-9a0c-0305e82c3301"


def scim(external_id: str, **fields) -> PersonClaims:
    return PersonClaims(Channel.SCIM, "scim", external_id, **fields)


def sso(external_id: str, **fields) -> PersonClaims:
    return PersonClaims(Channel.SSO, "conn_1", external_id, **fields)


def sync(tenant, claims, actor=SCIM_ACTOR):
    with db.transaction() as conn:
        return store.sync_person(conn, tenant, claims, actor)


def log_of(tenant):
    with db.transaction(tenant_id=tenant.id) as conn:
        return changes_after(conn, tenant.id, 0)


@pytest.fixture
def acme(make_tenant):
    return make_tenant("acme", provisioning="scim", domains=("acme.com",))


def test_identity_first(acme):
    created = sync(acme, scim("u-1", email="ann@acme.com"))
    again = sync(acme, scim("u-1", email="ann@acme.com", given_name="Ann"))
    assert again.user.id == created.user.id
    assert again.outcome is Outcome.UPDATED


def test_identity_first_even_for_an_inactive_user(acme):
    created = sync(acme, scim("u-1", email="ann@acme.com", active=False))
    assert created.user.status is UserStatus.INACTIVE
    assert sync(acme, scim("u-1", email="ann@acme.com", active=False)).user.id == created.user.id


def test_then_entra_object_id(acme):
    provisioned = sync(acme, scim("u-1", email="ann@acme.com", entra_object_id=OID))
    signed_in = sync(acme, sso("prof_9", email="ann.other@elsewhere.org", entra_object_id=OID.upper()), SSO_ACTOR)
    assert signed_in.user.id == provisioned.user.id
    assert signed_in.outcome is Outcome.LINKED


def test_then_verified_email(acme):
    provisioned = sync(acme, scim("u-1", email="Ann@Acme.com"))
    signed_in = sync(acme, sso("prof_9", email="ann@ACME.com"), SSO_ACTOR)
    assert signed_in.user.id == provisioned.user.id


def test_then_verified_email_includes_subdomains(acme):
    provisioned = sync(acme, scim("u-1", email="bo@uk.acme.com"))
    assert sync(acme, sso("prof_9", email="bo@uk.acme.com"), SSO_ACTOR).user.id == provisioned.user.id


def test_an_email_outside_the_tenant_domains_never_matches(acme):
    sync(acme, scim("u-1", email="contractor@gmail.com"))
    with pytest.raises(NotProvisioned):
        sync(acme, sso("prof_9", email="contractor@gmail.com"), SSO_ACTOR)


def test_a_match_never_takes_a_second_identity_from_one_source(acme):
    first = sync(acme, scim("u-1", email="ann@acme.com"))
    with pytest.raises(IdentityConflict) as conflict:
        sync(acme, scim("u-2", email="ann@acme.com"))
    assert conflict.value.field == "email"
    assert conflict.value.other_user_id == first.user.id


def test_otherwise_only_the_authoritative_channel_creates(acme):
    with pytest.raises(NotProvisioned, match="scim does"):
        sync(acme, sso("prof_9", email="new@acme.com"), SSO_ACTOR)
    assert sync(acme, scim("u-9", email="new@acme.com")).outcome is Outcome.CREATED


def test_sso_jit_tenants_create_users_at_sign_in(make_tenant):
    jit = make_tenant("jit", provisioning="sso-jit", domains=("jit.com",))
    assert sync(jit, sso("prof_1", email="a@jit.com", role_slugs=("member",)), SSO_ACTOR).outcome is Outcome.CREATED
    entra = PersonClaims(Channel.ENTRA, "tid", OID, email="b@jit.com")
    assert sync(jit, entra, SSO_ACTOR).outcome is Outcome.CREATED


def test_the_authoritative_channel_changes_everything(acme):
    created = sync(acme, scim("u-1", email="ann@acme.com", given_name="Ann", role_slugs=("member",)))
    changed = sync(acme, scim("u-1", email="ann.b@acme.com", given_name="Anne", role_slugs=("admin",),
                              entra_object_id=OID))
    user = changed.user
    assert (user.primary_email, user.given_name, user.role_slugs, user.entra_object_id) == (
        "ann.b@acme.com", "Anne", ("admin",), OID)
    assert user.version == created.user.version + 1
    assert sync(acme, scim("u-1", active=False)).outcome is Outcome.DEACTIVATED
    assert sync(acme, scim("u-1", active=True)).outcome is Outcome.REACTIVATED


def test_other_channels_only_link_and_fill(acme):
    sync(acme, scim("u-1", email="ann@acme.com", given_name="Ann", role_slugs=("member",)))
    result = sync(acme, sso("prof_9", email="ann@acme.com", given_name="Annie", family_name="Berg",
                            role_slugs=("admin",), entra_object_id=OID, active=False), SSO_ACTOR)
    user = result.user
    assert user.given_name == "Ann"  # already set: unchanged
    assert (user.family_name, user.entra_object_id) == ("Berg", OID)  # empty: filled
    assert user.role_slugs == ("member",)
    assert user.status is UserStatus.ACTIVE


def test_other_channels_never_touch_groups(acme):
    with db.transaction() as conn, pytest.raises(NotAuthoritative):
        store.upsert_group(conn, acme, Channel.WORKOS, "directory_1", "g1", "Sales", SSO_ACTOR)


def test_tombstones_return_only_through_the_authoritative_channel(acme):
    created = sync(acme, scim("u-1", email="ann@acme.com"))
    with db.transaction() as conn:
        store.delete_user(conn, acme, created.user.id, Channel.SCIM, SCIM_ACTOR)
    with pytest.raises(NotProvisioned):
        sync(acme, sso("prof_9", email="ann@acme.com"), SSO_ACTOR)
    restored = sync(acme, scim("u-1", email="ann@acme.com"))
    assert (restored.user.id, restored.outcome, restored.user.status) == (
        created.user.id, Outcome.RESTORED, UserStatus.ACTIVE)


def test_a_tombstone_comes_back_by_email_when_the_identity_is_new(acme):
    created = sync(acme, scim("u-1", email="ann@acme.com"))
    sso_linked = sync(acme, sso("prof_9", email="ann@acme.com"), SSO_ACTOR)
    assert sso_linked.outcome is Outcome.LINKED
    with db.transaction() as conn:
        store.delete_user(conn, acme, created.user.id, Channel.SCIM, SCIM_ACTOR)
    # The SCIM identity is still the same one: found by identity, restored.
    assert sync(acme, scim("u-1", email="ann@acme.com")).user.id == created.user.id


def test_a_recycled_address_gets_a_new_user_not_the_tombstone(acme):
    leaver = sync(acme, scim("u-1", email="john@acme.com"))
    with db.transaction() as conn:
        store.delete_user(conn, acme, leaver.user.id, Channel.SCIM, SCIM_ACTOR)
    joiner = sync(acme, scim("u-2", email="john@acme.com"))
    assert joiner.outcome is Outcome.CREATED
    assert joiner.user.id != leaver.user.id


def test_inactive_users_stay_inactive_until_the_authoritative_channel_says(acme):
    sync(acme, scim("u-1", email="ann@acme.com", active=False))
    linked = sync(acme, sso("prof_9", email="ann@acme.com", active=True), SSO_ACTOR)
    assert linked.user.status is UserStatus.INACTIVE
    assert sync(acme, scim("u-1", active=True)).user.status is UserStatus.ACTIVE


def test_uniqueness_conflicts_are_reported_not_resolved_when_a_tombstone_returns(acme):
    ann = sync(acme, scim("u-1", email="ann@acme.com"))
    with db.transaction() as conn:
        store.delete_user(conn, acme, ann.user.id, Channel.SCIM, SCIM_ACTOR)
    newcomer = sync(acme, scim("u-2", email="ann@acme.com"))  # the address was free meanwhile
    with pytest.raises(IdentityConflict, match="email 'ann@acme.com'") as conflict:
        sync(acme, scim("u-1", given_name="Ann"))  # the first Ann returns, by her identity
    assert conflict.value.other_user_id == newcomer.user.id
    with db.transaction() as conn:
        assert store.get_user(conn, acme, ann.user.id).status is UserStatus.DELETED


def test_uniqueness_conflicts_are_reported_not_resolved(acme):
    sync(acme, scim("u-1", email="ann@acme.com", entra_object_id=OID))
    bob = sync(acme, scim("u-2", email="bob@acme.com"))
    entries_before = len(log_of(acme))
    with pytest.raises(IdentityConflict) as conflict:
        sync(acme, scim("u-2", email="bob@acme.com", entra_object_id=OID))
    assert conflict.value.field == "entra_object_id"
    with pytest.raises(IdentityConflict, match="email 'ann@acme.com'"):
        sync(acme, scim("u-2", email="ann@acme.com"))
    with db.transaction() as conn:
        assert store.get_user(conn, acme, bob.user.id).primary_email == "bob@acme.com"
    assert len(log_of(acme)) == entries_before


def test_every_change_is_logged(acme):
    ann = sync(acme, scim("u-1", email="ann@acme.com")).user
    sync(acme, scim("u-1", email="ann@acme.com"))  # unchanged: nothing logged
    sync(acme, scim("u-1", given_name="Ann"))
    with db.transaction() as conn:
        group, _ = store.upsert_group(conn, acme, Channel.SCIM, "scim", "g-1", "Sales", SCIM_ACTOR)
        store.add_members(conn, acme, group.id, [ann.id], Channel.SCIM, SCIM_ACTOR)
        store.remove_members(conn, acme, group.id, [ann.id], Channel.SCIM, SCIM_ACTOR)
    entries = log_of(acme)
    assert [(entry.seq, entry.entity, entry.action) for entry in entries] == [
        (1, "user", "created"), (2, "user", "updated"), (3, "group", "created"),
        (4, "membership", "added"), (5, "membership", "removed")]
    assert entries[1].changes == {"given_name": [None, "Ann"]}
    assert entries[3].related_id == ann.id
    assert {entry.actor_id for entry in entries} == {"token-1"}


def test_a_deleted_group_cannot_be_revived_by_a_late_event(acme):
    with db.transaction() as conn:
        group, _ = store.upsert_group(conn, acme, Channel.SCIM, "scim", "g-1", "Sales", SCIM_ACTOR)
        store.delete_group(conn, acme, group.id, Channel.SCIM, SCIM_ACTOR)
    with db.transaction() as conn, pytest.raises(GroupDeleted):
        store.upsert_group(conn, acme, Channel.SCIM, "scim", "g-1", "Sales again", SCIM_ACTOR)


def test_deleting_a_group_ends_its_memberships_in_one_entry(acme):
    users = [sync(acme, scim(f"u-{n}", email=f"p{n}@acme.com")).user for n in range(3)]
    with db.transaction() as conn:
        group, _ = store.upsert_group(conn, acme, Channel.SCIM, "scim", "g-1", "Sales", SCIM_ACTOR)
        store.add_members(conn, acme, group.id, [user.id for user in users], Channel.SCIM, SCIM_ACTOR)
        store.delete_group(conn, acme, group.id, Channel.SCIM, SCIM_ACTOR)
        assert store.group_member_ids(conn, acme, group.id) == []
    last = log_of(acme)[-1]
    assert (last.entity, last.action, last.changes) == ("group", "deleted", {"memberships_ended": 3})


def test_deleting_a_user_ends_its_memberships_and_logs_each(acme):
    ann = sync(acme, scim("u-1", email="ann@acme.com")).user
    with db.transaction() as conn:
        group, _ = store.upsert_group(conn, acme, Channel.SCIM, "scim", "g-1", "Sales", SCIM_ACTOR)
        store.add_members(conn, acme, group.id, [ann.id], Channel.SCIM, SCIM_ACTOR)
        store.delete_user(conn, acme, ann.id, Channel.SCIM, SCIM_ACTOR)
    assert [(entry.entity, entry.action) for entry in log_of(acme)[-2:]] == [
        ("membership", "removed"), ("user", "deleted")]


def test_members_must_be_live_users_of_the_tenant(acme, make_tenant):
    other = make_tenant("other", provisioning="scim")
    stranger = sync(other, scim("x", email="x@other.example")).user
    with db.transaction() as conn:
        group, _ = store.upsert_group(conn, acme, Channel.SCIM, "scim", "g-1", "Sales", SCIM_ACTOR)
    from shared.identity.models import UnknownMembers

    with db.transaction() as conn, pytest.raises(UnknownMembers):
        store.add_members(conn, acme, group.id, [stranger.id], Channel.SCIM, SCIM_ACTOR)


def test_a_new_scim_resource_takes_the_id_of_the_user_it_lands_on(acme):
    created = sync(acme, scim(None, email="ann@acme.com"))
    with db.transaction() as conn:
        identities = store.user_identities(conn, acme, created.user.id)
    assert [row["external_id"] for row in identities] == [created.user.id]
    with pytest.raises(IdentityConflict):  # a second resource for the same person (rule 4)
        sync(acme, scim(None, email="ann@acme.com"))


def test_a_new_scim_resource_links_to_a_user_another_channel_created(make_tenant):
    jit = make_tenant("jit", provisioning="sso-jit", domains=("jit.com",))
    signed_in = sync(jit, sso("prof_1", email="ann@jit.com"), SSO_ACTOR).user
    from shared.tenants.registry import TenantChanges, update_tenant

    with db.transaction() as conn:
        scim_tenant = update_tenant(conn, "jit", TenantChanges(provisioning_channel="scim"))
    linked = sync(scim_tenant, scim(None, email="ann@jit.com"))
    assert (linked.user.id, linked.outcome) == (signed_in.id, Outcome.LINKED)
