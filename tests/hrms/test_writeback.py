"""Write-back with a writer scripted in the test (each HRMS's writer has its own tests against its stand-in):
intake, duplicates, a crash between the HRMS's write and our record, permanent refusals, poison, config."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from shared import config, db, queues
from shared.context.api import report_result, result
from shared.hrms import writeback
from shared.hrms.connectors.base import ConnectorError, Result, WriteRefused
from shared.tenants.apps import AppSpec, add_app, rotate_app_secret
from tests.teams.conftest import add_user, drain_queue

TARGETS = {"completion": {"training_type_id": 12}, "assessment": {"training_type_id": 13}}


class ScriptedWriter:
    """An HRMS that keeps written records in memory, found again by the result's marker."""

    def __init__(self) -> None:
        self.records: dict[str, tuple[str, Result, dict]] = {}
        self.refuse: str | None = None
        self.fail_writes = 0
        self.writes = 0

    def check_target(self, target: dict[str, Any]) -> dict[str, Any]:
        if target.get("training_type_id") not in (12, 13):
            raise ConnectorError(f"no training type {target.get('training_type_id')!r} in the HRMS", retryable=False)
        return dict(target)

    def find_written(self, hrms_id: str, result: Result, target: dict[str, Any]) -> str | None:
        return next((record_id for record_id, (employee, written, _) in self.records.items()
                     if employee == hrms_id and written.marker == result.marker), None)

    def write(self, hrms_id: str, result: Result, target: dict[str, Any]) -> str:
        if self.refuse:
            raise WriteRefused(self.refuse)
        if self.fail_writes:
            self.fail_writes -= 1
            raise ConnectorError("HRMS answered 503 after 4 attempts", retryable=True)
        self.writes += 1
        record_id = str(500 + len(self.records))
        self.records[record_id] = (hrms_id, result, dict(target))
        return record_id

    def close(self) -> None:
        pass


@pytest.fixture
def hrms(monkeypatch):
    writer = ScriptedWriter()
    monkeypatch.setattr("shared.hrms.connectors.writer", lambda kind, settings: writer)
    monkeypatch.setenv("SECRET_ACME_BAMBOOHR", '{"api_key": "k"}')
    return writer


@pytest.fixture
def acme(make_tenant, storage, hrms):
    queues.ensure_queues()
    tenant = make_tenant("acme", domains=("acme.com",), hrms={
        "kind": "bamboohr", "base_url": "https://acme.bamboohr.com", "credential_ref": "acme-bamboohr"})
    with db.transaction() as conn:
        tenant = writeback.configure(conn, tenant, {"enabled": True, **TARGETS})
    return tenant


@pytest.fixture
def ann(acme):
    """A user the read sync matched to HRMS employee 4242."""
    user_id = add_user(acme, "ann@acme.com")
    with db.transaction(tenant_id=acme.id) as conn:
        conn.execute("INSERT INTO hrms_employees (tenant_id, hrms_id, user_id, email, profile, digest, status)"
                     " VALUES (%s, '4242', %s, 'ann@acme.com', '{}', 'd', 'active')", [acme.id, user_id])
    return user_id


@pytest.fixture
def app_auth(acme):
    with db.transaction() as conn:
        add_app(conn, acme, "coach", AppSpec(kind="instance", base_url="https://coach.acme.com"))
        app, _, secret, _ = rotate_app_secret(conn, acme, "coach", created_by="test")
    return "Basic " + base64.b64encode(f"{app.client_id}:{secret}".encode()).decode()


def report(auth, **fields):
    document = {"result_id": "r-1", "user": "ann@acme.com", "kind": "completion", "title": "Feedback basics",
                "completed_on": "2026-11-20", "hours": 2.5, "credits": 1, **fields}
    response, after = report_result("acme", auth, json.dumps(document).encode())
    if after is not None:
        after()
    return response


def deliver_all() -> list[str]:
    return [writeback.write_message(json.dumps(message)) for message in drain_queue(config.queues().hrms_writeback)]


def test_a_result_is_accepted_queued_once_and_written_with_the_hrms_record_id(ann, app_auth, hrms):
    answer = report(app_auth)
    assert answer.status == 202
    assert answer.body == {"result_id": "r-1", "status": "queued"}
    assert report(app_auth).status == 202  # the same result again: accepted, queued again (a lost enqueue mends)
    assert deliver_all() == ["written", "skipped"]  # and written once
    assert hrms.writes == 1
    [(employee, written, target)] = hrms.records.values()
    assert (employee, written.title, written.hours, target) == ("4242", "Feedback basics", 2.5, TARGETS["completion"])
    status = result("acme", app_auth, "r-1")
    assert status.status == 200
    assert (status.body["status"], status.body["hrms_record_id"], status.body["hrms"]) == ("written", "500", "bamboohr")
    assert report(app_auth).body["status"] == "written"
    assert drain_queue(config.queues().hrms_writeback) == []  # a written result is not queued again


def test_every_bad_field_is_named_in_one_400(ann, app_auth):
    response, _ = report_result("acme", app_auth, json.dumps({
        "result_id": "bad id", "user": "", "kind": "quiz", "title": "", "completed_on": "20/11/2026",
        "score": "high", "hours": -1, "details": [1], "extra": 1}).encode())
    assert response.status == 400
    assert set(response.body["fields"]) == {"result_id", "user", "kind", "title", "completed_on", "score", "hours",
                                            "details", "body"}
    assert report_result("acme", app_auth, b"not json")[0].status == 400


def test_other_content_under_the_same_id_an_unknown_user_and_strangers_are_refused(ann, app_auth, make_tenant):
    report(app_auth)
    assert report(app_auth, title="Something else").status == 409
    assert report(app_auth, result_id="r-2", user="nobody@acme.com").status == 404
    assert report_result("acme", "Basic " + base64.b64encode(b"x:y").decode(), b"{}")[0].status == 401
    assert result("acme", app_auth, "r-unknown").status == 404


def test_a_crash_between_the_hrms_write_and_our_record_is_found_again_not_written_twice(ann, app_auth, hrms,
                                                                                          monkeypatch):
    report(app_auth)
    [message] = drain_queue(config.queues().hrms_writeback)
    real_transaction = db.transaction
    calls = {"n": 0}

    def dying_after_the_write(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:  # the transaction that records the write
            raise RuntimeError("the instance died")
        return real_transaction(*args, **kwargs)

    monkeypatch.setattr(db, "transaction", dying_after_the_write)
    with pytest.raises(RuntimeError):
        writeback.write_message(json.dumps(message))
    monkeypatch.setattr(db, "transaction", real_transaction)
    assert hrms.writes == 1
    assert writeback.write_message(json.dumps(message)) == "written"  # the host delivers it again
    assert hrms.writes == 1
    assert result("acme", app_auth, "r-1").body["hrms_record_id"] == "500"


def test_a_permanent_refusal_fails_the_result_with_the_reason(ann, app_auth, hrms):
    hrms.refuse = "BambooHR refused employee 4242: not found"
    report(app_auth)
    assert deliver_all() == ["failed"]
    status = result("acme", app_auth, "r-1").body
    assert (status["status"], status["failure_reason"]) == ("failed", "BambooHR refused employee 4242: not found")


def test_a_user_the_hrms_sync_has_not_matched_fails_with_that_reason(acme, app_auth):
    add_user(acme, "new@acme.com")
    report(app_auth, user="new@acme.com")
    assert deliver_all() == ["failed"]
    assert "no record in the HRMS" in result("acme", app_auth, "r-1").body["failure_reason"]


def test_a_write_that_keeps_failing_is_retried_then_poisoned_and_reported(ann, app_auth, hrms, caplog):
    hrms.fail_writes = 10
    report(app_auth)
    [message] = drain_queue(config.queues().hrms_writeback)
    body = json.dumps(message)
    with pytest.raises(ConnectorError):
        writeback.write_message(body)
    assert writeback.fail_poisoned(body)
    status = result("acme", app_auth, "r-1").body
    assert status["status"] == "failed"
    assert "503" in status["failure_reason"]
    assert any("r-1" in record.getMessage() for record in caplog.records)
    assert not writeback.fail_poisoned(body)


def test_results_are_refused_while_write_back_is_off(acme, app_auth, ann):
    with db.transaction() as conn:
        writeback.configure(conn, acme, {"enabled": False})
    response = report(app_auth)
    assert response.status == 409
    assert response.body["error"] == "writeback_off"


def test_targets_are_checked_against_the_hrms_before_they_are_saved(acme):
    from shared.tenants.models import InvalidValue

    with db.transaction() as conn, pytest.raises(InvalidValue) as caught:
        writeback.configure(conn, acme, {"completion": {"training_type_id": 99}})
    assert "no training type 99" in str(caught.value)
    with db.transaction() as conn:
        saved = writeback.configure(conn, acme, {"assessment": {"training_type_id": 12}})
    assert saved.hrms.writeback["assessment"] == {"training_type_id": 12}
    assert saved.hrms.writeback["enabled"] is True
