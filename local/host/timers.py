"""Timer-triggered functions on their NCRONTAB schedules, as the Functions host runs them.

- Schedules have six fields, seconds first (``0 */5 * * * *``), or are a TimeSpan (``00:05:00``);
  times are UTC.
- ``run_on_startup`` invokes the function once when the host starts.
- A timer never overlaps itself: the next occurrence is taken after the current run ends.
- Schedule monitoring (``use_monitor``, on by default for schedules of a minute or more): the last
  occurrence run is recorded; if the host was down when one was due, the function runs at start
  with ``past_due`` true, once, as the host's schedule monitor does.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from azure.functions.timer import TimerRequest

from local.host.hostjson import parse_timespan
from local.host.index import IndexedFunction, IndexingError
from local.host.invoker import HOST_API_REASON, Invoker

log = logging.getLogger("local.host")


class Schedule:
    """Next occurrences of an NCRONTAB expression or a TimeSpan interval."""

    def __init__(self, expression: str) -> None:
        self.expression = expression
        self.interval: timedelta | None = None
        if ":" in expression and " " not in expression.strip():
            self.interval = timedelta(seconds=parse_timespan(expression))
            if self.interval <= timedelta(0):
                raise IndexingError(f"timer schedule {expression!r} must be a positive interval")
            return
        from croniter import croniter

        if len(expression.split()) != 6:
            raise IndexingError(
                f"timer schedule {expression!r} must have six fields (second minute hour day month weekday)")
        if not croniter.is_valid(expression, second_at_beginning=True):
            raise IndexingError(f"timer schedule {expression!r} is not a valid NCRONTAB expression")

    def next_after(self, moment: datetime) -> datetime:
        if self.interval is not None:
            return moment + self.interval
        from croniter import croniter

        return croniter(self.expression, moment, second_at_beginning=True).get_next(datetime)

    def period(self, moment: datetime) -> timedelta:
        first = self.next_after(moment)
        return self.next_after(first) - first


class TimerStatusStore:
    """Last occurrence run per timer function (the host keeps it in blob storage; here, one file)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path

    def last(self, name: str) -> datetime | None:
        if self.path is None or not self.path.is_file():
            return None
        value = json.loads(self.path.read_text()).get(name)
        return datetime.fromisoformat(value) if value else None

    def record(self, name: str, occurrence: datetime) -> None:
        if self.path is None:
            return
        document = json.loads(self.path.read_text()) if self.path.is_file() else {}
        document[name] = occurrence.isoformat()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps(document, indent=2))


def _now() -> datetime:
    return datetime.now(UTC)


class TimerRunner:
    def __init__(self, function: IndexedFunction, invoker: Invoker, status: TimerStatusStore) -> None:
        self.function = function
        self.invoker = invoker
        self.status = status
        self.schedule = Schedule(function.trigger["schedule"])
        use_monitor = function.trigger.get("useMonitor")
        self.monitored = (
            use_monitor if use_monitor is not None else self.schedule.period(_now()) >= timedelta(minutes=1))

    async def _fire(self, *, past_due: bool, occurrence: datetime | None, reason: str) -> None:
        schedule_status: dict[str, Any] = {}
        if occurrence is not None:
            schedule_status = {
                "Last": occurrence.isoformat(),
                "Next": self.schedule.next_after(occurrence).isoformat(),
                "LastUpdated": _now().isoformat(),
            }
        request = TimerRequest(past_due=past_due, schedule_status=schedule_status)
        # The invoker logged any failure; a timer keeps its schedule after one.
        with contextlib.suppress(Exception):
            await self.invoker.invoke(self.function, request, reason=reason)
        if occurrence is not None and self.monitored:
            self.status.record(self.function.name, occurrence)

    async def run(self, stopping: asyncio.Event) -> None:
        now = _now()
        if self.function.trigger.get("runOnStartup"):
            await self._fire(past_due=False, occurrence=None, reason=HOST_API_REASON)
        last = self.status.last(self.function.name) if self.monitored else None
        if last is not None:
            missed = self.schedule.next_after(last)
            if missed <= now:
                await self._fire(past_due=True, occurrence=missed, reason="Timer fired at startup (past due)")
        previous = now
        while not stopping.is_set():
            # From the later of now and the last occurrence: a wait that ends a little early must
            # not fire the same occurrence twice.
            occurrence = self.schedule.next_after(max(_now(), previous))
            previous = occurrence
            delay = (occurrence - _now()).total_seconds()
            try:
                await asyncio.wait_for(stopping.wait(), timeout=max(delay, 0))
                return
            except TimeoutError:
                pass
            late = (_now() - occurrence) > timedelta(seconds=5)
            await self._fire(past_due=late, occurrence=occurrence, reason=f"Timer fired at {occurrence.isoformat()}")
