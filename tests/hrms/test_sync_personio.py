"""The engine end to end against the Personio stand-in: a sync interrupted at a random page and delivered
again, an HRMS that keeps failing, and two workers given the same run at once."""

from __future__ import annotations

import json
import random
import threading

import pytest

from local.hrms_people import Workforce
from local.personio import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, PersonioStandIn
from shared import config, db, queues
from shared.hrms import engine, runs, store
from shared.hrms.connectors.base import TOKENS, ConnectorError
from tests.teams.conftest import add_user, drain_queue

SIZE = 450  # five pages of 100, the last one short


@pytest.fixture
def personio(monkeypatch):
    monkeypatch.setenv("OUTBOUND_ALLOWED_LOCAL_HOSTS", "127.0.0.1")
    monkeypatch.setenv("SECRET_ACME_PERSONIO", json.dumps({"client_id": DEFAULT_CLIENT_ID,
                                                           "client_secret": DEFAULT_CLIENT_SECRET}))
    config.reset()
    TOKENS.forget()
    with PersonioStandIn(Workforce(SIZE, domain="acme.com")) as running:
        yield running
    TOKENS.forget()


@pytest.fixture
def acme(make_tenant, storage, personio):
    queues.ensure_queues()
    return make_tenant("acme", domains=("acme.com",), hrms={
        "kind": "personio", "base_url": personio.base_url, "credential_ref": "acme-personio", "pace": False,
        "field_mapping": {"competencies": "dynamic_1001", "rating": "dynamic_1002"}})


def start(acme, mode="full"):
    run = engine.start_run(acme.id, mode, requested_by="test")
    [message] = drain_queue(config.queues().hrms_sync)
    return run, json.dumps(message)


def stored(acme):
    with db.transaction(tenant_id=acme.id) as conn:
        return conn.execute("SELECT count(*), count(DISTINCT hrms_id), count(user_id) FROM hrms_employees"
                            ).fetchone()


def run_of(acme, run_id):
    with db.transaction(tenant_id=acme.id) as conn:
        return runs.get_run(conn, acme.id, run_id)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_sync_interrupted_at_a_random_page_resumes_and_loses_or_doubles_nothing(acme, personio, monkeypatch,
                                                                                    seed):
    add_user(acme, personio.workforce.person(0).email)  # one employee is a provisioned user
    crash_at = random.Random(seed).randrange(1, 5)
    real_upsert = store.upsert_page
    pages = {"n": 0}

    def crashing(*args, **kwargs):
        pages["n"] += 1
        if pages["n"] == crash_at + 1:
            raise RuntimeError(f"the instance died writing page {crash_at + 1}")
        return real_upsert(*args, **kwargs)

    monkeypatch.setattr(store, "upsert_page", crashing)
    run, body = start(acme)
    with pytest.raises(RuntimeError):
        engine.sync_message(body)
    assert stored(acme)[0] == crash_at * 100
    assert engine.sync_message(body).status == "finished"  # the host delivers the message again
    count, distinct, with_user = stored(acme)
    assert (count, distinct) == (SIZE, SIZE)
    finished = run_of(acme, run.id)
    assert (finished.counts["seen"], finished.counts["created"], finished.pages) == (SIZE, SIZE, 5)
    assert with_user == 1
    assert finished.counts["unmatched"] == SIZE - 1


def test_an_hrms_that_keeps_failing_fails_the_attempt_with_a_retryable_error_then_recovers(acme, personio):
    run, body = start(acme)
    personio.fail_next(503, count=50, path_contains="/v1/company/employees")
    with pytest.raises(ConnectorError) as caught:
        engine.sync_message(body)
    assert caught.value.retryable
    assert "503" in run_of(acme, run.id).last_error
    personio.clear_faults()
    assert engine.sync_message(body).status == "finished"
    assert stored(acme)[0] == SIZE


def test_two_workers_given_the_same_run_at_once_write_it_once(acme):
    run, body = start(acme)
    outcomes: list[str] = []

    def work() -> None:
        outcomes.append(engine.sync_message(body).status)

    workers = [threading.Thread(target=work) for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    assert sorted(outcomes) in (["busy", "finished"], ["finished", "skipped"])
    assert stored(acme)[:2] == (SIZE, SIZE)
    assert run_of(acme, run.id).counts["seen"] == SIZE


def test_departed_and_incremental_runs_against_personio(acme, personio):
    _, body = start(acme)
    engine.sync_message(body)
    personio.depart([3, 4])
    personio.change([10, 11, 12])
    run, body = start(acme, "incremental")
    engine.sync_message(body)
    counts = run_of(acme, run.id).counts
    assert (counts["seen"], counts["updated"]) == (3, 3)
    run, body = start(acme, "full")
    engine.sync_message(body)
    assert run_of(acme, run.id).counts["departed"] == 2
