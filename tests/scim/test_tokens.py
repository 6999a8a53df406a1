"""SCIM tokens (shared/scim/tokens.py): per tenant, shown once, revocable."""

from __future__ import annotations

from shared import db
from shared.scim import tokens


def test_a_token_authenticates_only_for_its_own_tenant(make_tenant):
    acme, beta = make_tenant("acme"), make_tenant("beta")
    with db.transaction() as conn:
        token, value = tokens.create_scim_token(conn, acme, "entra", created_by="test")
        assert value.startswith("ecs_")
        assert tokens.authenticate(conn, acme, value).id == token.id
        assert tokens.authenticate(conn, beta, value) is None
        assert tokens.authenticate(conn, acme, value + "x") is None
        assert tokens.authenticate(conn, acme, None) is None


def test_a_revoked_token_stops_working_and_others_keep_working(make_tenant):
    acme = make_tenant("acme")
    with db.transaction() as conn:
        old, old_value = tokens.create_scim_token(conn, acme, "okta-old", created_by="test")
        _, new_value = tokens.create_scim_token(conn, acme, "okta-new", created_by="test")
        tokens.revoke_scim_token(conn, acme, old.id)
        assert tokens.authenticate(conn, acme, old_value) is None
        assert tokens.authenticate(conn, acme, new_value) is not None
        listed = {token.name: token.revoked_at is not None for token in tokens.list_scim_tokens(conn, acme)}
    assert listed == {"okta-old": True, "okta-new": False}
