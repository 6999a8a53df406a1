"""Starting syncs, reading the history and changing the field mapping: the ops CLI and the admin API."""

from __future__ import annotations

import json

import pytest

from shared import cli, config, db, queues
from shared.admin import api as admin_api
from shared.admin import keys
from shared.hrms import engine
from tests.hrms.test_engine import HRMS, ScriptedConnector, employee
from tests.teams.conftest import drain_queue


@pytest.fixture
def acme(make_tenant, storage, monkeypatch):
    queues.ensure_queues()
    connector = ScriptedConnector([employee(number) for number in range(5)])
    monkeypatch.setattr(engine, "open_connector", lambda settings: connector)
    monkeypatch.setattr("shared.hrms.connectors.supports_incremental", lambda kind: True)
    return make_tenant("acme", domains=("acme.com",), hrms=HRMS)


@pytest.fixture
def run(capsys):
    def run(*arguments: str) -> tuple[int, str, str]:
        try:
            code = cli.main(["--no-local-settings", *arguments])
        except SystemExit as exit_:
            code = exit_.code
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


def test_the_cli_starts_a_sync_shows_the_history_and_edits_the_mapping(acme, run):
    code, out, err = run("hrms", "sync", "acme", "--full")
    assert code == 0, err
    assert out.startswith("full sync of acme: run ")
    assert out.strip().endswith("queued")
    [message] = drain_queue(config.queues().hrms_sync)
    engine.sync_message(json.dumps(message))
    code, out, _ = run("hrms", "runs", "acme", "--json")
    [history] = json.loads(out)
    assert (history["status"], history["seen"], history["created"], history["mode"]) == ("succeeded", 5, 5, "full")
    assert history["duration_seconds"] is not None
    code, out, _ = run("hrms", "runs", "acme")
    assert out.splitlines()[0].split()[:3] == ["RUN_ID", "MODE", "STATUS"]
    code, out, err = run("hrms", "mapping", "acme", "--set", "skills=dynamic_9", "--remove", "rating", "--json")
    assert code == 0, err
    assert json.loads(out) == {"competencies": "dynamic_1001", "skills": "dynamic_9"}
    code, _, err = run("hrms", "mapping", "acme", "--set", "level=salary")
    assert code == 1
    assert "'salary'" in err
    code, out, _ = run("hrms", "attributes", "acme")
    assert "dynamic_1001" in out.split()


def test_the_cli_says_when_a_tenant_has_no_hrms(make_tenant, run, storage):
    make_tenant("plain", domains=("plain.com",))
    code, _, err = run("hrms", "sync", "plain")
    assert code == 1
    assert "has no HRMS settings" in err


@pytest.fixture
def operator_key(database):
    with db.transaction() as conn:
        _, key = keys.create_admin_key(conn, "operator", "ops", created_by="test")
    return key


def call(handler, key, **params):
    return admin_api.handle(handler, getattr(admin_api, handler), authorization=f"Bearer {key}", source="test",
                            params=params)


def test_the_admin_api_starts_one_run_at_a_time_lists_runs_and_checks_mappings(acme, operator_key):
    started = call("hrms_sync", operator_key, slug="acme", body=json.dumps({"mode": "full"}))
    assert started.status == 202
    again = call("hrms_sync", operator_key, slug="acme", body=json.dumps({"mode": "incremental"}))
    assert again.status == 409
    assert again.body["run_id"] == started.body["run_id"]
    assert len(drain_queue(config.queues().hrms_sync)) == 1
    listed = call("hrms_runs", operator_key, slug="acme")
    assert [entry["run_id"] for entry in listed.body["runs"]] == [started.body["run_id"]]
    bad = call("hrms_mapping", operator_key, slug="acme", body=json.dumps({"field_mapping": {"x": "nope"}}))
    assert bad.status == 400
    assert "'nope'" in bad.body["message"]
    good = call("hrms_mapping", operator_key, slug="acme", body=json.dumps({"field_mapping": {"x": "dynamic_9"}}))
    assert good.body["field_mapping"] == {"x": "dynamic_9"}
    assert call("hrms_sync", operator_key, slug="acme", body=json.dumps({"mode": "sometimes"})).status == 400


def test_a_tenant_key_cannot_reach_another_tenants_hrms(acme, make_tenant, database):
    make_tenant("other", domains=("other.com",))
    with db.transaction() as conn:
        _, key = keys.create_admin_key(conn, "tenant:other", "other", created_by="test")
    assert call("hrms_sync", key, slug="acme").status == 404
    assert call("hrms_runs", key, slug="acme").status == 404
