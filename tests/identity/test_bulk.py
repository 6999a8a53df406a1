"""sync_people: the same outcomes and the same users as sync_person called once per person, in order,
whatever the mix (new people, linked people, shared and changing emails, tombstones, refusals)."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared import db
from shared.identity import store
from shared.identity.models import Actor, ActorKind, Channel, IdentityError, PersonClaims
from tests.stack import unique

ACTOR = Actor(ActorKind.IDP, "directory_1")
EXTERNAL_IDS = [f"directory_user_{n}" for n in range(6)]
EMAILS = [None, "ann@acme.com", "bo@acme.com", "cy@acme.com", "dee@elsewhere.org"]

claims_strategy = st.builds(
    lambda external_id, email, given_name, active, roles, clears: PersonClaims(
        Channel.WORKOS, "directory_1", external_id, email=email, given_name=given_name, active=active,
        role_slugs=roles, clears_absent=frozenset({"given_name"}) if clears else frozenset()),
    st.sampled_from(EXTERNAL_IDS), st.sampled_from(EMAILS), st.sampled_from([None, "Ann", "Bo"]),
    st.sampled_from([None, True, False]), st.sampled_from([None, (), ("member",), ("admin", "member")]),
    st.booleans())


def batch_strategy():
    return st.lists(claims_strategy, min_size=1, max_size=6, unique_by=lambda claims: claims.external_id)


def _state(tenant) -> list[tuple]:
    with db.transaction(tenant_id=tenant.id) as conn:
        rows = conn.execute(
            "SELECT i.external_id, split_part(u.primary_email, '@', 1), u.given_name, u.status, u.role_slugs"
            " FROM user_identities i JOIN users u ON u.id = i.user_id ORDER BY i.external_id").fetchall()
    return [tuple(row) for row in rows]


def _summary(result) -> str:
    return type(result).__name__ if isinstance(result, IdentityError) else result.outcome.value


@pytest.fixture
def make_pair(make_tenant):
    def make():
        # Each pair has its own users; the domain is the same, so each tenant is made in turn.
        suffix = unique("")
        return [make_tenant(f"{name}-{suffix}", provisioning="workos", domains=(f"{name}-{suffix}.com",))
                for name in ("bulk", "seq")]

    return make


@pytest.fixture
def tenants(make_pair):
    return make_pair()


@settings(max_examples=40, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batches=st.lists(batch_strategy(), min_size=1, max_size=4), deletions=st.sets(st.sampled_from(EXTERNAL_IDS)))
def test_sync_people_matches_sync_person_one_by_one(make_pair, batches, deletions):
    tenants = bulk, one_by_one = make_pair()  # a fresh pair for every example
    for number, batch in enumerate(batches):
        batch = [_on_domain(claims, bulk) for claims in batch]
        with db.transaction() as conn:
            bulk_results = [_summary(result) for result in store.sync_people(conn, bulk, batch, ACTOR)]
        sequential = []
        for claims in batch:
            with db.transaction() as conn:
                try:
                    claims = _on_domain(claims, one_by_one)
                    sequential.append(_summary(store.sync_person(conn, one_by_one, claims, ACTOR)))
                except IdentityError as error:
                    sequential.append(_summary(error))
        assert bulk_results == sequential
        if number == 0:  # some people leave, so later batches meet tombstones
            for tenant in tenants:
                with db.transaction() as conn:
                    for user_id in _linked_ids(conn, tenant, deletions):
                        store.delete_user(conn, tenant, user_id, Channel.WORKOS, ACTOR)
        assert _state(bulk) == _state(one_by_one)


def _on_domain(claims: PersonClaims, tenant) -> PersonClaims:
    """acme.com stands for the tenant's own (verified) domain."""
    email = claims.email.replace("acme.com", tenant.domains[0]) if claims.email else None
    return dataclasses.replace(claims, email=email)


def _linked_ids(conn, tenant, external_ids) -> list[str]:
    db.use_tenant(conn, tenant.id)
    return [str(row[0]) for row in conn.execute(
        "SELECT user_id FROM user_identities WHERE external_id = ANY(%s)", [sorted(external_ids)]).fetchall()]


def test_sync_people_refuses_a_mixed_or_repeated_batch(tenants):
    bulk, _ = tenants
    claims = PersonClaims(Channel.WORKOS, "directory_1", "u1", email="ann@acme.com")
    with db.transaction() as conn, pytest.raises(ValueError, match="distinct external id"):
        store.sync_people(conn, bulk, [claims, claims], ACTOR)


def test_a_directory_snapshot_clears_a_name_it_no_longer_has(tenants):
    bulk, _ = tenants
    with db.transaction() as conn:
        store.sync_people(conn, bulk, [PersonClaims(Channel.WORKOS, "d", "u1", given_name="Ann")], ACTOR)
        [result] = store.sync_people(conn, bulk, [PersonClaims(
            Channel.WORKOS, "d", "u1", clears_absent=frozenset({"given_name"}))], ACTOR)
    assert result.user.given_name is None


def test_deactivate_identities_deactivates_only_that_directory(tenants):
    bulk, _ = tenants
    with db.transaction() as conn:
        [ann] = store.sync_people(conn, bulk, [PersonClaims(Channel.WORKOS, "d1", "u1")], ACTOR)
        [bo] = store.sync_people(conn, bulk, [PersonClaims(Channel.WORKOS, "d2", "u2")], ACTOR)
        deactivated = store.deactivate_identities(conn, bulk, Channel.WORKOS, "d1", ACTOR)
    with db.transaction() as conn:
        ann, bo = store.get_user(conn, bulk, ann.user.id), store.get_user(conn, bulk, bo.user.id)
    assert deactivated == [ann.id]
    assert (ann.status.value, bo.status.value) == ("inactive", "active")
