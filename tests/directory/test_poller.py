"""The Events API poller (shared/directory/poller.py) against the WorkOS stand-in: cursor persistence,
restarts, catch-up, overlap with webhooks, and events of organizations configured later."""

from __future__ import annotations

import pytest

from shared import db, queues
from shared.directory import poller
from tests.directory.conftest import deliver, state_of, statuses


@pytest.fixture
def setup(make_directory, workos_settings, storage):
    queues.ensure_queues()
    return make_directory("acme")


def test_the_poller_applies_the_history_and_keeps_its_cursor(setup, standin):
    tenant, directory = setup
    events = [directory.activated()] + [
        directory.event("dsync.user.created", directory.user(f"u{n}")) for n in range(250)]
    report = poller.poll()
    assert (report.received, report.new, report.applied) == (251, 251, 251)
    assert poller.read_cursor() == events[-1]["id"]
    assert len(state_of(tenant, directory)["users"]) == 250
    assert poller.poll().received == 0  # nothing after the cursor


def test_a_restart_resumes_after_the_last_recorded_page(setup, standin, monkeypatch):
    tenant, directory = setup
    for n in range(150):
        directory.event("dsync.user.created", directory.user(f"u{n}"))
    real_drain = poller._drain

    def crash_after_first_page(*args, **kwargs):
        raise SystemExit("the instance went away")

    monkeypatch.setattr(poller, "PAGES_PER_DRAIN", 1)
    monkeypatch.setattr(poller, "_drain", crash_after_first_page)
    with pytest.raises(SystemExit):
        poller.poll()
    first_page_end = standin.events()[99]["id"]
    assert poller.read_cursor() == first_page_end  # recorded and remembered, not yet applied
    monkeypatch.setattr(poller, "_drain", real_drain)
    report = poller.poll()
    assert report.received == 50  # only the second page is read again
    assert len(state_of(tenant, directory)["users"]) == 150  # the directory's first page too


def test_webhooks_and_the_poller_delivering_the_same_events_apply_them_once(setup, standin):
    tenant, directory = setup
    events = [directory.event("dsync.user.created", directory.user("ann")),
              directory.event("dsync.user.updated", directory.user("ann", first_name="Ann"))]
    deliver(events[:1], "webhook")
    report = poller.poll()
    assert (report.received, report.new) == (2, 1)
    deliver(events, "webhook")  # late webhook retries
    poller.poll()
    assert state_of(tenant, directory)["users"] == [("ann", "ann", "Ann", "active", [])]
    with db.transaction(all_tenants=True) as conn:
        assert conn.execute("SELECT count(*) FROM workos_events").fetchone()[0] == 2


def test_events_of_an_unknown_organization_are_kept_and_replayed_once_the_tenant_is_configured(
        make_directory, make_tenant, workos_settings, storage, standin):
    queues.ensure_queues()
    _, orphan = make_directory(None, domain="later.example")
    event = orphan.event("dsync.user.created", orphan.user("ann"))
    poller.poll()
    assert statuses([event["id"]])[event["id"]] == ("unmatched", None)
    tenant = make_tenant("later", provisioning="workos", domains=("later.example",),
                         workos_organization_id=orphan.organization["id"])
    poller.poll()  # the next run finds the tenant
    assert statuses([event["id"]])[event["id"]][0] == "applied"
    assert [row[0] for row in state_of(tenant, orphan)["users"]] == ["ann"]


def test_a_second_poller_that_finds_the_cursor_moved_stops(setup, standin, monkeypatch):
    _, directory = setup
    directory.event("dsync.user.created", directory.user("ann"))
    real_read = poller.read_cursor
    monkeypatch.setattr(poller, "read_cursor", lambda: "event_00STALE")  # what it read before the other moved it
    with db.transaction() as conn:
        conn.execute("INSERT INTO workos_event_cursor (name, last_event_id) VALUES ('events', 'event_00OTHER')")
    report = poller.poll()
    assert report.stopped_by_other_poller
    monkeypatch.setattr(poller, "read_cursor", real_read)
    assert poller.read_cursor() == "event_00OTHER"
