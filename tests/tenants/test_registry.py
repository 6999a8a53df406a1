"""shared/tenants/registry.py: its contract."""

from __future__ import annotations

import pytest

from shared import db
from shared.tenants.apps import AppSpec, add_app
from shared.tenants.models import InvalidValue, TenantConflict, TenantNotFound, TenantStatus
from shared.tenants.registry import (
    TenantChanges,
    create_tenant,
    find_tenant_by_domain,
    find_tenant_by_teams_tenant,
    find_tenant_by_workos_organization,
    get_tenant,
    set_status,
    update_tenant,
)


def _create(slug: str, **fields):
    with db.transaction() as conn:
        return create_tenant(conn, slug, TenantChanges(display_name=fields.pop("display_name", "X"), **fields))


def _update(slug: str, **fields):
    with db.transaction() as conn:
        return update_tenant(conn, slug, TenantChanges(**fields))


def test_a_tenant_is_created_with_its_domains_normalised(database):
    tenant = _create("acme", display_name="Acme", add_domains=("Acme.COM.", "acme.co.uk"),
                     support_contact="it@acme.com")
    assert (tenant.slug, tenant.display_name, tenant.domains) == ("acme", "Acme", ("acme.co.uk", "acme.com"))
    assert tenant.status is TenantStatus.ACTIVE
    with db.transaction() as conn:
        assert find_tenant_by_domain(conn, "ACME.com").slug == "acme"


@pytest.mark.parametrize("slug", ["Acme", "acme_co", "-acme", "acme-", "a--b", "ac me", "", "a" * 64])
def test_slugs_outside_the_key_vault_alphabet_are_refused(database, slug):
    with pytest.raises(InvalidValue, match="slug"):
        _create(slug)


def test_a_duplicate_slug_is_refused(database):
    _create("acme")
    with pytest.raises(TenantConflict, match="tenant 'acme' already exists"):
        _create("acme")


def test_an_email_domain_belongs_to_one_tenant_only(database):
    _create("acme", add_domains=("acme.com",))
    with pytest.raises(TenantConflict, match="domain acme.com already belongs to tenant 'acme'"):
        _create("beta", add_domains=("ACME.com",))
    _create("beta")
    with pytest.raises(TenantConflict, match="acme.com"):
        _update("beta", add_domains=("acme.com",))


def test_workos_organizations_and_teams_tenants_are_unique(database):
    _create("acme", workos_organization_id="org_1", teams_tenant_id="11111111-2222-3333-4444-555555555555")
    with pytest.raises(TenantConflict, match="workos_organization_id org_1"):
        _create("beta", workos_organization_id="org_1")
    with pytest.raises(TenantConflict, match="teams_tenant_id"):
        _create("gamma", teams_tenant_id="11111111-2222-3333-4444-555555555555")


def test_entra_sign_in_needs_the_customer_tenant_and_client_ids(database):
    with pytest.raises(InvalidValue, match="entra needs"):
        _create("acme", sso_provider="entra", entra_tenant_id="11111111-2222-3333-4444-555555555555")
    tenant = _create("acme", sso_provider="entra", entra_tenant_id="11111111-2222-3333-4444-555555555555",
                     entra_client_id="AAAAAAAA-2222-3333-4444-555555555555")
    assert tenant.entra_client_id == "aaaaaaaa-2222-3333-4444-555555555555"


@pytest.mark.parametrize(("fields", "field"), [
    ({"support_contact": "not a contact"}, "support_contact"),
    ({"support_contact": "http://help.acme.com"}, "support_contact"),
    ({"workos_organization_id": "acme"}, "workos_organization_id"),
    ({"teams_tenant_id": "not-a-guid"}, "teams_tenant_id"),
    ({"provisioning_channel": "csv"}, "provisioning_channel"),
    ({"add_domains": ("not a domain",)}, "domain"),
    ({"hrms": {"kind": "personio", "base_url": "ftp://x", "credential_ref": "k"}}, "hrms.base_url"),
    ({"hrms": {"kind": "workday", "base_url": "https://x.com", "credential_ref": "k"}}, "hrms.kind"),
])
def test_malformed_fields_are_refused_naming_the_field(database, fields, field):
    with pytest.raises(InvalidValue) as error:
        _create("acme", **fields)
    assert error.value.field == field


def test_routing_rules_must_name_apps_of_the_tenant(database):
    tenant = _create("acme")
    with pytest.raises(InvalidValue, match="no app named coach"):
        _update("acme", routes=("role:member=coach",))
    with db.transaction() as conn:
        add_app(conn, tenant, "coach", AppSpec(kind="instance", base_url="https://acme.coach.example"))
        add_app(conn, tenant, "dashboard", AppSpec(kind="admin", base_url="https://admin.coach.example"))
    updated = _update("acme", routes=("role:admin=dashboard", "group:Learners=coach"), default_app="coach")
    assert updated.routing.as_dict() == {"rules": [
        {"match": "role", "value": "admin", "app": "dashboard"},
        {"match": "group", "value": "Learners", "app": "coach"}], "default_app": "coach"}


def test_a_tenant_is_suspended_not_deleted(database):
    _create("acme")
    with db.transaction() as conn:
        assert set_status(conn, "acme", TenantStatus.SUSPENDED).status is TenantStatus.SUSPENDED
        assert get_tenant(conn, "acme").is_active is False


def test_an_unknown_tenant_is_named(database):
    with pytest.raises(TenantNotFound, match="no tenant 'nope'"), db.transaction() as conn:
        get_tenant(conn, "nope")


def test_a_tenant_is_found_by_its_workos_organization_and_teams_tenant(database):
    _create("acme", workos_organization_id="org_1", teams_tenant_id="11111111-2222-3333-4444-555555555555")
    with db.transaction() as conn:
        assert find_tenant_by_workos_organization(conn, "org_1").slug == "acme"
        assert find_tenant_by_teams_tenant(conn, "11111111-2222-3333-4444-555555555555").slug == "acme"
        assert find_tenant_by_workos_organization(conn, "org_2") is None
        assert find_tenant_by_domain(conn, "unknown.example") is None
