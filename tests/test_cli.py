"""The ops CLI as an operator uses it: outputs, secrets printed once, audit, and every bad input."""

from __future__ import annotations

import json

import pytest

from shared import cli, db
from shared.admin.audit import recent


@pytest.fixture
def run(database, capsys):
    def run(*arguments: str) -> tuple[int, str, str]:
        try:
            code = cli.main(["--no-local-settings", *arguments])
        except SystemExit as exit_:  # argparse refusals
            code = exit_.code
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


def _ok(run, *arguments: str) -> str:
    code, out, err = run(*arguments)
    assert code == 0, err
    return out


def test_a_new_operator_registers_a_tenant_and_reads_it_back(run):
    out = _ok(run, "tenant", "add", "acme", "--name", "Acme Corp", "--domain", "acme.com", "--domain", "acme.co.uk",
              "--support-contact", "it@acme.com", "--workos-org", "org_01ACME")
    assert out.startswith("created tenant acme")
    listed = json.loads(_ok(run, "tenant", "list", "--json"))
    assert [(t["slug"], t["domains"], t["provisioning_channel"]) for t in listed] == [
        ("acme", ["acme.co.uk", "acme.com"], "scim")]
    table = _ok(run, "tenant", "list")
    assert table.splitlines()[0].split()[:3] == ["SLUG", "DISPLAY_NAME", "STATUS"]
    shown = json.loads(_ok(run, "tenant", "show", "acme", "--json"))
    assert (shown["support_contact"], shown["workos_organization_id"], shown["apps"]) == (
        "it@acme.com", "org_01ACME", [])


def test_update_suspend_and_activate(run):
    _ok(run, "tenant", "add", "acme", "--name", "Acme")
    _ok(run, "app", "add", "acme", "coach", "--kind", "instance", "--base-url", "https://acme.coach.example")
    out = _ok(run, "tenant", "update", "acme", "--route", "role:admin=coach", "--default-app", "coach",
              "--domain", "acme.com", "--provisioning", "workos")
    shown = dict(line.split(None, 1) for line in out.splitlines())
    assert (shown["provisioning_channel"], shown["domains"]) == ("workos", "[\"acme.com\"]")
    assert json.loads(shown["routing"]) == {"rules": [{"match": "role", "value": "admin", "app": "coach"}],
                                            "default_app": "coach"}
    assert _ok(run, "tenant", "suspend", "acme").strip() == "tenant acme is suspended"
    assert _ok(run, "tenant", "activate", "acme").strip() == "tenant acme is active"


@pytest.mark.parametrize(("arguments", "message"), [
    (("tenant", "show", "nope"), "no tenant 'nope'"),
    (("tenant", "update", "nope", "--name", "X"), "no tenant 'nope'"),
    (("tenant", "add", "Bad_Slug", "--name", "X"), "slug: 'Bad_Slug' must be"),
    (("tenant", "add", "beta", "--name", "X", "--domain", "taken.com"), "domain taken.com already belongs"),
    (("tenant", "add", "taken", "--name", "X"), "tenant 'taken' already exists"),
    (("tenant", "add", "beta", "--name", "X", "--support-contact", "ftp://help"), "support_contact"),
    (("tenant", "add", "beta", "--name", "X", "--teams-tenant-id", "123"), "teams_tenant_id: '123' is not a GUID"),
    (("tenant", "update", "taken", "--remove-domain", "other.com"), "other.com is not a domain of 'taken'"),
    (("tenant", "update", "taken", "--route", "admin"), "must look like role:SLUG=APP"),
    (("app", "add", "taken", "coach", "--kind", "instance", "--base-url", "ftp://x.example"), "base_url"),
    (("app", "add", "taken", "coach", "--kind", "instance", "--base-url", "http://coach.example"), "must use https"),
    (("app", "add", "nope", "coach", "--kind", "instance", "--base-url", "https://x.example"), "no tenant 'nope'"),
    (("app", "remove", "taken", "ghost"), "has no app 'ghost'"),
    (("scim-token", "create", "nope"), "no tenant 'nope'"),
    (("admin-key", "create", "--scope", "tenant:nope"), "no tenant 'nope'"),
    (("admin-key", "create", "--scope", "root"), "must be 'operator' or 'tenant:<slug>'"),
    (("admin-key", "revoke", "not-a-key"), "no admin key 'not-a-key'"),
    (("user", "show", "taken", "ghost@taken.com"), "has no user ghost@taken.com"),
])
def test_bad_input_gets_one_clear_line_and_exit_code_1(run, arguments, message):
    _ok(run, "tenant", "add", "taken", "--name", "Taken", "--domain", "taken.com")
    code, _out, err = run(*arguments)
    assert code == 1
    assert err.startswith("error: ")
    assert message in err, err
    assert "Traceback" not in err


@pytest.mark.parametrize("arguments", [
    ("tenant", "add", "acme"),  # --name is required
    ("tenant", "add", "acme", "--name", "A", "--provisioning", "csv"),
    ("app", "add", "acme", "coach", "--kind", "portal", "--base-url", "https://x.example"),
    ("frobnicate",),
])
def test_a_malformed_command_line_exits_2(run, arguments):
    code, _, err = run(*arguments)
    assert code == 2
    assert "usage:" in err


def test_invalid_hrms_json_exits_2(run):
    code, _, err = run("tenant", "add", "acme", "--name", "A", "--hrms", "{nope")
    assert (code, err.startswith("error: --hrms is not JSON")) == (2, True)


def test_issued_secrets_are_the_last_line_of_stdout_and_never_listed(run):
    _ok(run, "tenant", "add", "acme", "--name", "Acme")
    admin_key = _ok(run, "admin-key", "create", "--scope", "tenant:acme", "--name", "acme-it").splitlines()[-1]
    scim_token = _ok(run, "scim-token", "create", "acme", "--name", "entra").splitlines()[-1]
    assert admin_key.startswith("eca_")
    assert scim_token.startswith("ecs_")
    listings = _ok(run, "admin-key", "list") + _ok(run, "admin-key", "list", "--json") + _ok(
        run, "scim-token", "list", "acme", "--json")
    assert admin_key not in listings
    assert scim_token not in listings
    assert json.loads(_ok(run, "admin-key", "list", "--json"))[0]["scope"] == "tenant:acme"


def test_app_secrets_rotate_without_downtime(run):
    _ok(run, "tenant", "add", "acme", "--name", "Acme")
    _ok(run, "app", "add", "acme", "coach", "--kind", "instance", "--base-url", "https://acme.coach.example")
    first = _ok(run, "app", "secret", "create", "acme", "coach").splitlines()
    second = _ok(run, "app", "secret", "create", "acme", "coach").splitlines()
    assert first[-1].startswith("ecp_")
    assert first[-1] != second[-1]
    code, _, err = run("app", "secret", "create", "acme", "coach")
    assert code == 1
    assert "already has 2 live secrets" in err
    rotated = _ok(run, "app", "secret", "rotate", "acme", "coach").splitlines()
    assert rotated[0].startswith("revoked secret")
    assert rotated[-1].startswith("ecp_")
    secrets = json.loads(_ok(run, "app", "secret", "list", "acme", "coach", "--json"))
    assert [secret["revoked_at"] is None for secret in secrets] == [False, True, True]
    secret_id = secrets[1]["id"]
    assert _ok(run, "app", "secret", "revoke", "acme", "coach", secret_id).startswith(f"revoked secret {secret_id}")
    apps = json.loads(_ok(run, "app", "list", "acme", "--json"))
    assert (apps[0]["name"], apps[0]["live_secrets"]) == ("coach", 1)
    assert _ok(run, "app", "remove", "acme", "coach").strip() == "removed app coach from acme"


def test_users_are_listed_and_shown_by_id_or_email(run):
    _ok(run, "tenant", "add", "acme", "--name", "Acme", "--domain", "acme.com")
    from shared.identity import store
    from shared.identity.models import Actor, ActorKind, Channel, PersonClaims
    from shared.tenants.registry import get_tenant

    with db.transaction() as conn:
        tenant = get_tenant(conn, "acme")
        user = store.sync_person(conn, tenant, PersonClaims(Channel.SCIM, "scim", "u1", email="ann@acme.com",
                                                            display_name="Ann"), Actor(ActorKind.SYSTEM, "t")).user
    listed = json.loads(_ok(run, "user", "list", "acme", "--json"))
    assert [u["primary_email"] for u in listed] == ["ann@acme.com"]
    by_email = json.loads(_ok(run, "user", "show", "acme", "ANN@acme.com", "--json"))
    assert (by_email["id"], by_email["identities"]) == (user.id, ["scim:scim:u1"])
    assert json.loads(_ok(run, "user", "show", "acme", user.id, "--json"))["display_name"] == "Ann"


def test_changes_are_audited_with_the_operator_and_no_secret(run):
    _ok(run, "tenant", "add", "acme", "--name", "Acme")
    key = _ok(run, "admin-key", "create", "--scope", "operator").splitlines()[-1]
    with db.transaction() as conn:
        rows = recent(conn, limit=10)
    assert [row["action"] for row in reversed(rows)] == ["tenant.add", "admin-key.create"]
    assert all(row["actor"].startswith("cli:") and row["source"] == "cli" for row in rows)
    assert key not in json.dumps(rows, default=str)
