"""The Events API poller (a timer): WorkOS's ordered, 90-day event history, read after a cursor.

Contract (tests/directory/test_poller.py):
- reads ``GET /events`` for the ``dsync.*`` types after the persisted cursor, oldest first, 100 at a
  time (a thread fetches up to four pages ahead); with no cursor yet it starts at the oldest event
  WorkOS keeps (90 days);
- each page is recorded in the inbox and the cursor moved to its last event in one transaction,
  so the cursor never passes an event that is not recorded and a restart resumes after the last
  recorded page; the move is a compare-and-set, so a second poller running at the same time stops
  instead of skipping or repeating pages;
- events already delivered by a webhook are duplicates of the inbox (same ids) and change nothing;
- the directories that got pending events are drained (applied in order) within the run's time
  budget, and whatever is left is queued on ``dsync-apply``;
- every run also gives unmatched events whose organization now has a tenant to that tenant, and
  drains directories whose pending events have waited longer than ``SWEEP_AFTER_SECONDS`` (an
  enqueue that was lost), so nothing received is ever left behind.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from shared import db
from shared.directory import apply, inbox
from shared.directory.events import DSYNC_EVENTS, DirectoryEvent, MalformedEvent, parse_event

log = logging.getLogger(__name__)

CURSOR_NAME = "events"
PAGE_SIZE = 100
# Pages recorded before the directories they touched are drained: bigger batches apply faster.
PAGES_PER_DRAIN = 10
SWEEP_AFTER_SECONDS = 120.0


@dataclass
class PollReport:
    received: int = 0
    new: int = 0
    applied: int = 0
    malformed: int = 0
    queued: list[str] = field(default_factory=list)
    stopped_by_other_poller: bool = False

    def as_dict(self) -> dict[str, object]:
        return {"received": self.received, "new": self.new, "applied": self.applied, "malformed": self.malformed,
                "queued_directories": self.queued, "stopped_by_other_poller": self.stopped_by_other_poller}


def read_cursor() -> str | None:
    with db.transaction() as conn:
        row = conn.execute("SELECT last_event_id FROM workos_event_cursor WHERE name = %s", [CURSOR_NAME]).fetchone()
    return row[0] if row else None


def _move_cursor(conn, expected: str | None, new: str) -> bool:  # noqa: ANN001 - a psycopg connection
    if expected is None:
        row = conn.execute(
            "INSERT INTO workos_event_cursor (name, last_event_id) VALUES (%s, %s) ON CONFLICT (name) DO UPDATE"
            " SET last_event_id = EXCLUDED.last_event_id, updated_at = now()"
            " WHERE workos_event_cursor.last_event_id IS NULL RETURNING 1", [CURSOR_NAME, new]).fetchone()
    else:
        row = conn.execute(
            "UPDATE workos_event_cursor SET last_event_id = %s, updated_at = now()"
            " WHERE name = %s AND last_event_id = %s RETURNING 1", [new, CURSOR_NAME, expected]).fetchone()
    return row is not None


def _parse_page(items: list[object], report: PollReport) -> list[DirectoryEvent]:
    events = []
    for item in items:
        document = item.to_dict() if hasattr(item, "to_dict") else item
        try:
            events.append(parse_event(document))
        except MalformedEvent as error:  # cannot be recorded; WorkOS would not send it twice either
            report.malformed += 1
            log.error("Events API: skipped a malformed event %s: %s", getattr(item, "id", "?"), error)
    return [event for event in events if event.is_directory_event]


class _PagesAhead:
    """The pages after a cursor, fetched on a thread of their own up to ``AHEAD`` pages ahead of the
    caller, so that reading WorkOS overlaps recording and applying. Iterating yields each page's
    items in order and ends after the last (short or empty) page; a failure to fetch is raised to the
    caller when it reaches that page."""

    AHEAD = 4

    def __init__(self, client: object, cursor: str | None) -> None:
        self._client = client
        self._cursor = cursor
        self._pages: queue.Queue[list[object] | BaseException | None] = queue.Queue(maxsize=self.AHEAD)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._fetch, name="events-api-pages", daemon=True)
        self._thread.start()

    def _put(self, item: list[object] | BaseException | None) -> bool:
        while not self._stop.is_set():
            try:
                self._pages.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def _fetch(self) -> None:
        after = self._cursor
        try:
            while not self._stop.is_set():
                page = self._client.events.list_events(events=list(DSYNC_EVENTS), after=after, limit=PAGE_SIZE)
                items = list(page.data)
                if items and not self._put(items):
                    return
                if len(items) < PAGE_SIZE:
                    self._put(None)
                    return
                after = _event_id(items[-1])
        except BaseException as error:  # handed to the caller, which decides
            self._put(error)

    def __iter__(self):  # noqa: ANN204 - a generator of pages
        while True:
            item = self._pages.get()
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def _event_id(item: object) -> str:
    # Every SDK event model carries its id; an unknown variant keeps the raw document.
    return getattr(item, "id", None) or item.to_dict()["id"]  # type: ignore[attr-defined]


def _drain(pending: set[tuple[str, str]], deadline: float, clock: Callable[[], float], report: PollReport,
           known: dict[str, DirectoryEvent] | None = None) -> None:
    from shared.directory.webhook import enqueue_directory

    for tenant_id, directory_id in sorted(pending):
        remaining = deadline - clock()
        result = apply.drain_directory(tenant_id, directory_id, budget_seconds=max(remaining, 0.0), clock=clock,
                                       known=known)
        report.applied += result.applied
        if result.busy or result.more:
            enqueue_directory(tenant_id, directory_id, delay_seconds=5 if result.busy else 0)
            report.queued.append(directory_id)
    pending.clear()
    if known is not None:
        known.clear()


def poll(*, budget_seconds: float = 240.0, clock: Callable[[], float] = time.monotonic) -> PollReport:
    """One run of the poller; returns what it did."""
    from shared import config
    from shared.workos_api import client

    if not config.workos_configured():
        log.info("Events API poller: WORKOS_API_KEY is not set, nothing to poll")
        return PollReport()
    deadline = clock() + budget_seconds
    report = PollReport()
    with db.transaction(all_tenants=True) as conn:
        pending = set(inbox.claim_unmatched(conn)) | set(
            inbox.directories_with_pending(conn, older_than_seconds=SWEEP_AFTER_SECONDS))
    cursor = read_cursor()
    known: dict[str, DirectoryEvent] = {}  # what this run recorded, so draining need not read it back
    pages = _PagesAhead(client(), cursor)
    try:
        for number, items in enumerate(pages, start=1):
            events = _parse_page(items, report)
            last_id = _event_id(items[-1])
            with db.transaction(all_tenants=True) as conn:
                if not _move_cursor(conn, cursor, last_id):
                    report.stopped_by_other_poller = True
                    log.warning("Events API: another poller moved the cursor; this run stops")
                    break
                recorded = inbox.record_events(conn, events, "events-api")
            known.update((event.id, event) for event in events)
            cursor = last_id
            report.received += len(items)
            report.new += sum(1 for entry in recorded if entry.new)
            pending |= {(entry.tenant_id, entry.directory_id) for entry in recorded
                        if entry.new and entry.status == "pending" and entry.tenant_id and entry.directory_id}
            if number % PAGES_PER_DRAIN == 0:
                _drain(pending, deadline, clock, report, known)
            if clock() >= deadline:
                break
    finally:
        pages.close()
    _drain(pending, deadline, clock, report, known)
    return report
