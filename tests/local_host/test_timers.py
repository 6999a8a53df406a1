"""Timer behaviours of the local host."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from local.host.index import IndexingError
from local.host.timers import Schedule
from tests.stack import wait_until


def test_run_on_startup_invokes_once_at_start(fixture_host):
    wait_until(lambda: fixture_host.records("startup"), message="the startup invocation")
    assert [entry["past_due"] for entry in fixture_host.records("startup")] == [False]


def test_a_six_field_schedule_fires_on_its_seconds(fixture_host):
    fired = wait_until(lambda: len(fixture_host.records("timer")) >= 3 and fixture_host.records("timer"),
                       timeout=20, message="three timer invocations")
    seconds = [int(entry["at"]) for entry in fired[:3]]
    assert all(second % 2 == 0 for second in seconds), seconds
    assert len(set(seconds)) == 3
    assert not any(entry["past_due"] for entry in fired)


def test_a_monitored_timer_that_missed_its_occurrence_runs_at_start_past_due(fixture_host):
    missed = wait_until(lambda: fixture_host.records("minute"), message="the past-due invocation")
    assert missed[0]["past_due"] is True


def test_ncrontab_puts_seconds_first():
    start = datetime(2026, 1, 1, 9, 0, 0, tzinfo=UTC)
    assert Schedule("30 15 9 * * *").next_after(start) == datetime(2026, 1, 1, 9, 15, 30, tzinfo=UTC)
    assert Schedule("0 0 9 * * Mon-Fri").next_after(start) == datetime(2026, 1, 2, 9, 0, 0, tzinfo=UTC)


def test_a_timespan_schedule_is_an_interval():
    start = datetime(2026, 1, 1, tzinfo=UTC)
    assert Schedule("00:05:00").next_after(start) == datetime(2026, 1, 1, 0, 5, tzinfo=UTC)


@pytest.mark.parametrize("bad", ["* * * * *", "61 * * * * *", "every minute"])
def test_schedules_the_host_refuses_are_refused(bad):
    with pytest.raises(IndexingError):
        Schedule(bad)
