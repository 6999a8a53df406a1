"""The sync engine with a connector scripted in the test (the vendor connectors have their own tests against
their stand-ins): checkpoints, crashes and redeliveries, one run per tenant, departures, matching, poison."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime

import pytest

from shared import config, db, queues
from shared.hrms import engine, runs, schedule, store
from shared.hrms.connectors.base import Employee, Page
from tests.teams.conftest import add_user, drain_queue

HRMS = {"kind": "personio", "base_url": "https://api.personio.de", "credential_ref": "acme-personio",
        "field_mapping": {"competencies": "dynamic_1001", "rating": "dynamic_1002"}}


def employee(number: int, **fields) -> Employee:
    base = Employee(hrms_id=str(1000 + number), email=f"person{number}@acme.com", first_name=f"P{number}",
                    last_name="Example", job_title="Engineer", department="Engineering", location="Berlin",
                    manager_hrms_id="1000" if number else None, manager_email="person0@acme.com" if number else None,
                    status="active", start_date="2020-01-01",
                    attributes={"dynamic_1001": "coaching,feedback", "dynamic_1002": 4, "dynamic_9": "x"})
    return replace(base, **fields)


class ScriptedConnector:
    """Pages of ``size`` over ``people``; the cursor is the offset. ``fail_at`` offsets raise once each."""

    kind = "personio"
    supports_incremental = True
    requests_per_minute = 300

    def __init__(self, people: list[Employee], *, size: int = 3, changed: list[Employee] | None = None) -> None:
        self.people = people
        self.size = size
        self.changed = changed
        self.fail_at: set[int] = set()
        self.asked: list[tuple[str | None, datetime | None]] = []

    def page(self, cursor: str | None, *, changed_since: datetime | None = None) -> Page:
        self.asked.append((cursor, changed_since))
        offset = int(cursor or 0)
        if offset in self.fail_at:
            self.fail_at.discard(offset)
            raise ConnectionError(f"the HRMS dropped the connection at offset {offset}")
        source = self.changed if changed_since is not None and self.changed is not None else self.people
        chunk = source[offset:offset + self.size]
        following = offset + self.size
        return Page(chunk, str(following) if following < len(source) else None)

    def attributes(self) -> list[str]:
        return ["dynamic_1001", "dynamic_1002", "dynamic_9", "first_name"]

    def close(self) -> None:
        pass


@pytest.fixture
def teams_queues(storage):
    queues.ensure_queues()
    return storage


@pytest.fixture
def acme(make_tenant, teams_queues):
    return make_tenant("acme", domains=("acme.com",), hrms=HRMS)


@pytest.fixture
def hrms(acme, monkeypatch):
    """The tenant's connector, scripted: ``hrms.people`` is what the HRMS holds."""
    connector = ScriptedConnector([employee(number) for number in range(10)])
    monkeypatch.setattr(engine, "open_connector", lambda settings: connector)
    monkeypatch.setattr("shared.hrms.connectors.supports_incremental", lambda kind: True)
    return connector


def sync_all(acme, run, *, budget: float = 60.0):
    """Deliver the run's message, then each continuation the worker queues, until the run ends."""
    body = json.dumps(engine.message(acme.id, run))
    outcome = engine.sync_message(body, budget_seconds=budget)
    while outcome.status == "continued":
        [body] = [json.dumps(message) for message in drain_queue(config.queues().hrms_sync)]
        outcome = engine.sync_message(body, budget_seconds=budget)
    return outcome


def start(acme, mode="full"):
    run = engine.start_run(acme.id, mode, requested_by="test")
    drain_queue(config.queues().hrms_sync)
    return run


def run_of(acme, run_id):
    with db.transaction(tenant_id=acme.id) as conn:
        return runs.get_run(conn, acme.id, run_id)


def employees(acme):
    with db.transaction(tenant_id=acme.id) as conn:
        return {row[0]: row[1:] for row in conn.execute(
            "SELECT hrms_id, user_id::text, status, context, departed_at IS NOT NULL FROM hrms_employees").fetchall()}


def test_a_full_sync_keeps_every_employee_with_mapped_context_and_counts(acme, hrms):
    ann = add_user(acme, "person1@acme.com")
    run = start(acme)
    outcome = sync_all(acme, run)
    assert outcome.status == "finished"
    stored = employees(acme)
    assert len(stored) == 10
    assert stored["1001"][0] == ann
    assert stored["1002"][0] is None
    assert stored["1001"][2] == {"competencies": "coaching,feedback", "rating": 4}
    finished = run_of(acme, run.id)
    assert finished.status == "succeeded"
    assert (finished.pages, finished.counts["seen"], finished.counts["created"]) == (4, 10, 10)
    assert (finished.counts["updated"], finished.counts["unmatched"], finished.counts["departed"]) == (0, 9, 0)


def test_a_crash_in_the_middle_resumes_after_the_last_written_page(acme, hrms):
    hrms.fail_at = {6}
    run = start(acme)
    body = json.dumps(engine.message(acme.id, run))
    with pytest.raises(ConnectionError):
        engine.sync_message(body)
    interrupted = run_of(acme, run.id)
    assert (interrupted.status, interrupted.cursor, interrupted.pages) == ("running", "6", 2)
    assert "dropped the connection" in interrupted.last_error
    assert len(employees(acme)) == 6
    hrms.asked.clear()
    assert engine.sync_message(body).status == "finished"  # the host delivers the message again
    assert hrms.asked[0][0] == "6"  # resumed, not restarted
    finished = run_of(acme, run.id)
    assert (finished.counts["seen"], finished.counts["created"], finished.pages) == (10, 10, 4)
    assert len(employees(acme)) == 10


def test_a_crash_between_the_write_and_the_checkpoint_loses_and_doubles_nothing(acme, hrms, monkeypatch):
    real_checkpoint = runs.checkpoint
    calls = {"n": 0}

    def crashing(conn, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("the instance died")
        return real_checkpoint(conn, *args, **kwargs)

    monkeypatch.setattr(runs, "checkpoint", crashing)
    run = start(acme)
    body = json.dumps(engine.message(acme.id, run))
    with pytest.raises(RuntimeError):
        engine.sync_message(body)
    assert len(employees(acme)) == 3  # the second page's write rolled back with its checkpoint
    assert engine.sync_message(body).status == "finished"
    finished = run_of(acme, run.id)
    assert (finished.counts["seen"], finished.counts["created"]) == (10, 10)


def test_one_run_per_tenant_whoever_asks(acme, hrms):
    first = engine.start_run(acme.id, "full", requested_by="schedule")
    second = engine.start_run(acme.id, "incremental", requested_by="ops")
    assert first.created
    assert not second.created
    assert second.id == first.id
    assert len(drain_queue(config.queues().hrms_sync)) == 1


def test_a_second_message_while_a_worker_holds_the_run_comes_back_later(acme, hrms):
    run = start(acme)
    with db.transaction(tenant_id=acme.id) as conn:
        assert runs.claim(conn, acme.id, run.id, "another-instance").run is not None
    outcome = engine.sync_message(json.dumps(engine.message(acme.id, run)))
    assert outcome.status == "busy"
    assert employees(acme) == {}
    queue = queues.queue_client(config.queues().hrms_sync)
    assert queue.get_queue_properties().approximate_message_count == 1  # back after the lease


def test_a_finished_run_delivered_again_does_nothing(acme, hrms):
    run = start(acme)
    sync_all(acme, run)
    hrms.asked.clear()
    assert engine.sync_message(json.dumps(engine.message(acme.id, run))).status == "skipped"
    assert hrms.asked == []


def test_a_spent_budget_queues_the_run_again_and_it_goes_on(acme, hrms):
    run = start(acme)
    first = engine.sync_message(json.dumps(engine.message(acme.id, run)), budget_seconds=0)
    assert (first.status, first.pages) == ("continued", 1)
    assert sync_all_from_queue(acme).status == "finished"
    assert run_of(acme, run.id).counts["seen"] == 10


def sync_all_from_queue(acme):
    outcome = None
    while True:
        messages = drain_queue(config.queues().hrms_sync)
        if not messages:
            return outcome
        outcome = engine.sync_message(json.dumps(messages[0]), budget_seconds=0)


def test_a_full_sync_marks_those_no_longer_present_as_departed_and_keeps_them(acme, hrms):
    sync_all(acme, start(acme))
    hrms.people = hrms.people[:7]
    run = start(acme)
    sync_all(acme, run)
    stored = employees(acme)
    assert len(stored) == 10
    assert {hrms_id for hrms_id, row in stored.items() if row[3]} == {"1007", "1008", "1009"}
    assert stored["1008"][1] == "departed"
    assert stored["1008"][2]["competencies"] == "coaching,feedback"  # context kept
    assert run_of(acme, run.id).counts["departed"] == 3
    # Back in the HRMS: no longer departed, counted as updated.
    hrms.people = [employee(number) for number in range(10)]
    again = start(acme)
    sync_all(acme, again)
    assert not any(row[3] for row in employees(acme).values())
    assert run_of(acme, again.id).counts["updated"] == 3


def test_an_incremental_sync_asks_for_changes_since_the_last_run_and_counts_them(acme, hrms):
    sync_all(acme, start(acme))
    hrms.changed = [employee(2, job_title="Lead"), employee(4)]
    run = start(acme, "incremental")
    assert run.mode == "incremental"
    previous = next(entry for entry in runs_list(acme) if entry.status == "succeeded")
    assert run.changed_since == previous.started_at - runs.INCREMENTAL_OVERLAP
    hrms.asked.clear()
    sync_all(acme, run)
    assert hrms.asked[0][1] == run.changed_since
    counted = run_of(acme, run.id).counts
    assert (counted["seen"], counted["updated"], counted["created"], counted["departed"]) == (2, 1, 0, 0)


def runs_list(acme):
    with db.transaction(tenant_id=acme.id) as conn:
        return runs.list_runs(conn, acme.id)


def test_the_first_incremental_request_is_a_full_sync(acme, hrms):
    assert start(acme, "incremental").mode == "full"


def test_the_same_page_written_twice_changes_nothing_the_second_time(acme, hrms):
    run = start(acme)
    page = [employee(number) for number in range(3)]
    with db.transaction(tenant_id=acme.id) as conn:
        first = store.upsert_page(conn, acme.id, run.id, page, HRMS["field_mapping"])
        second = store.upsert_page(conn, acme.id, run.id, page, HRMS["field_mapping"])
        one_by_one = store.upsert_rows_one_by_one(conn, acme.id, run.id, page, HRMS["field_mapping"])
    assert (first["created"], second["created"], second["updated"]) == (3, 0, 0)
    assert one_by_one == second


def test_a_matched_employee_keeps_its_user_when_the_email_changes(acme, hrms):
    ann = add_user(acme, "person1@acme.com")
    sync_all(acme, start(acme))
    hrms.people[1] = employee(1, email="ann.new@acme.com")
    sync_all(acme, start(acme))
    assert employees(acme)["1001"][0] == ann


def test_a_poisoned_run_fails_with_its_last_error_and_the_admins_are_told(acme, hrms, caplog):
    hrms.fail_at = {0, 3}
    run = start(acme)
    body = json.dumps(engine.message(acme.id, run))
    with pytest.raises(ConnectionError):
        engine.sync_message(body)
    failed = engine.fail_poisoned(body)
    assert failed.status == "failed"
    assert "dropped the connection at offset 0" in failed.failure_reason
    assert any("failed" in record.getMessage() and run.id in record.getMessage() for record in caplog.records)
    assert engine.fail_poisoned(body) is None  # already over
    assert engine.start_run(acme.id, "full", requested_by="test").created  # the tenant is not blocked


def test_a_poisoned_run_becomes_a_teams_alert_for_admins_where_teams_is_set_up(make_tenant, teams_queues,
                                                                             monkeypatch):
    from shared.identity import store as identity
    from shared.identity.models import Actor, ActorKind, Channel, PersonClaims

    tenant = make_tenant("beta", domains=("beta.com",), hrms=HRMS,
                         teams_tenant_id="0b0b0b0b-0000-4000-8000-000000000001")
    monkeypatch.setenv("MicrosoftAppId", "b07b07b0-0000-4000-8000-000000000b07")
    with db.transaction() as conn:
        identity.sync_person(conn, tenant, PersonClaims(Channel.SCIM, "scim", None, email="boss@beta.com",
                                                        role_slugs=("admin",), active=True),
                             Actor(ActorKind.SYSTEM, "test"))
        run = runs.request_run(conn, tenant.id, "full", requested_by="test")
        runs.record_error(conn, run.id, "x", "HRMS refused the credential")
    failed = engine.fail_poisoned(json.dumps(engine.message(tenant.id, run)))
    assert failed.status == "failed"
    [alert] = drain_queue(config.queues().teams_alerts)
    assert alert["alert_id"] == f"hrms-failed-{run.id}"


def test_malformed_messages_raise_so_the_host_poisons_them():
    for body in ("nope", "{}", '{"tenant": "x", "mode": "full", "run_id": "y"}',
                 '{"tenant": "72f988bf-0000-4000-8000-00000000a1b2", "mode": "half", "run_id": "x"}'):
        with pytest.raises(ValueError):
            engine.parse_message(body)


def test_the_schedule_queues_due_tenants_once_and_full_when_the_last_full_is_old(acme, hrms):
    queued = schedule.queue_due_runs()
    assert [(entry.tenant, entry.mode, entry.reason) for entry in queued] == [("acme", "full", "due")]
    assert schedule.queue_due_runs() == []  # its run is unfinished
    drain_queue(config.queues().hrms_sync)
    assert schedule.is_due("0 0 2 * * *", datetime.fromisoformat("2026-01-01T01:00:00+00:00"),
                           datetime.fromisoformat("2026-01-01T02:00:01+00:00"))
    assert not schedule.is_due("0 0 2 * * *", datetime.fromisoformat("2026-01-01T02:00:01+00:00"),
                               datetime.fromisoformat("2026-01-01T03:00:00+00:00"))


def test_a_run_whose_message_was_lost_is_queued_again(acme, hrms):
    run = start(acme)
    with db.transaction(tenant_id=acme.id) as conn:
        conn.execute("UPDATE hrms_runs SET queued_at = now() - interval '1 hour' WHERE id = %s", [run.id])
    queued = schedule.queue_due_runs()
    assert [(entry.run_id, entry.reason) for entry in queued] == [(run.id, "stale")]
    [message] = drain_queue(config.queues().hrms_sync)
    assert message["run_id"] == run.id


def test_the_context_api_shows_what_the_hrms_says(acme, hrms):
    from shared.context.api import user_context
    from shared.tenants.apps import AppSpec, add_app, rotate_app_secret

    ann = add_user(acme, "person1@acme.com")
    boss = add_user(acme, "person0@acme.com")
    sync_all(acme, start(acme))
    with db.transaction() as conn:
        add_app(conn, acme, "coach", AppSpec(kind="instance", base_url="https://coach.acme.com"))
        app, _, secret, _ = rotate_app_secret(conn, acme, "coach", created_by="test")
    import base64

    authorization = "Basic " + base64.b64encode(f"{app.client_id}:{secret}".encode()).decode()
    answer = user_context("acme", authorization, "person1@acme.com")
    assert answer.status == 200
    assert answer.body["user"]["id"] == ann
    hrms_record = answer.body["hrms"]
    assert hrms_record["job_title"] == "Engineer"
    assert hrms_record["manager"] == {"hrms_id": "1000", "email": "person0@acme.com", "user_id": boss}
    assert hrms_record["context"] == {"competencies": "coaching,feedback", "rating": 4}
    assert answer.body["last_sync_at"] is not None
    assert user_context("acme", authorization, ann).status == 200
    assert user_context("acme", authorization, "nobody@acme.com").status == 404
    assert user_context("other", authorization, ann).status == 401
    assert user_context("acme", "Basic " + base64.b64encode(b"x:y").decode(), ann).status == 401


def test_field_mappings_are_checked_against_what_the_hrms_lets_us_read(acme, hrms):
    from shared.hrms.mapping import save_mapping
    from shared.tenants.models import InvalidValue

    with db.transaction() as conn, pytest.raises(InvalidValue) as caught:
        save_mapping(conn, acme, {"skills": "dynamic_1001", "Bad Key": "dynamic_1002"})
    assert "'Bad Key'" in str(caught.value)
    with db.transaction() as conn, pytest.raises(InvalidValue) as caught:
        save_mapping(conn, acme, {"skills": "dynamic_4242", "level": "salary"})
    assert "'dynamic_4242'" in str(caught.value)
    assert "'salary'" in str(caught.value)
    with db.transaction() as conn:
        saved = save_mapping(conn, acme, {"skills": "dynamic_1001"})
    assert saved.hrms.field_mapping == {"skills": "dynamic_1001"}


def test_a_refused_credential_fails_the_run_at_once_and_a_long_pause_waits_without_an_attempt(acme, hrms):
    from shared.hrms.connectors.base import ConnectorError
    from shared.http import RetryLater

    run = start(acme)
    body = json.dumps(engine.message(acme.id, run))
    hrms.page = lambda cursor, changed_since=None: (_ for _ in ()).throw(
        RetryLater("personio", "429, retry after 600 s", status=429, retryable=True, retry_after=600))
    assert engine.sync_message(body).status == "paused"
    assert run_of(acme, run.id).status == "running"
    queue = queues.queue_client(config.queues().hrms_sync)
    assert queue.get_queue_properties().approximate_message_count == 1  # back in 10 minutes
    hrms.page = lambda cursor, changed_since=None: (_ for _ in ()).throw(
        ConnectorError("Personio: the credential was refused (check client_id/client_secret)", retryable=False))
    assert engine.sync_message(body).status == "failed"
    failed = run_of(acme, run.id)
    assert failed.status == "failed"
    assert "credential was refused" in failed.failure_reason
