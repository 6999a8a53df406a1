"""Synthetic employees shared by the HRMS stand-ins: deterministic, any number, cheap to make on demand.

Contract: ``Workforce(size, domain=..., seed=...)`` holds ``size`` employees numbered 0..size-1; ``person(i)``
is the same record every time (and in every process) for the same size, domain and seed, except for what
``change`` and ``depart``/``hire`` alter. Managers form a tree (employee 0 has none); about 4% are on leave,
2% onboarding, 2% inactive. Each has two custom fields (``competencies``, ``review_rating``). ``updated_at``
starts at ``epoch`` plus a few minutes per index; ``change(indexes)`` bumps the title and ``updated_at`` of
those employees to now, so an incremental sync finds exactly them. ``emails`` can be given for the first
employees (a stand-in seeded to match provisioned users).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

FIRST_NAMES = ("Ada", "Alan", "Grace", "Linus", "Barbara", "Edsger", "Margaret", "Dennis", "Frances", "Ken",
               "Radia", "Tim", "Hedy", "John", "Katherine", "Donald", "Shafi", "Leslie", "Anita", "Niklaus")
LAST_NAMES = ("Lovelace", "Turing", "Hopper", "Torvalds", "Liskov", "Dijkstra", "Hamilton", "Ritchie", "Allen",
              "Thompson", "Perlman", "Berners-Lee", "Lamarr", "McCarthy", "Johnson", "Knuth", "Goldwasser",
              "Lamport", "Borg", "Wirth")
TITLES = ("Software Engineer", "Senior Software Engineer", "Product Manager", "Designer", "Data Analyst",
          "Sales Manager", "Account Executive", "HR Business Partner", "Team Lead", "Support Specialist")
DEPARTMENTS = ((1, "Engineering"), (2, "Product"), (3, "Sales"), (4, "People"), (5, "Support"), (6, "Finance"))
OFFICES = ((10, "Berlin"), (11, "Munich"), (12, "London"), (13, "Remote"))
COMPETENCIES = ("feedback", "delegation", "coaching", "planning", "communication", "negotiation")
EPOCH = datetime(2024, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Person:
    index: int
    id: int  # the HRMS's numeric id
    email: str
    first_name: str
    last_name: str
    title: str
    department_id: int
    department: str
    office_id: int
    office: str
    manager_index: int | None
    status: str  # onboarding | active | leave | inactive
    hire_date: str  # YYYY-MM-DD
    competencies: str
    review_rating: int
    updated_at: datetime
    extra: dict[str, str] = field(default_factory=dict)


class Workforce:
    def __init__(self, size: int, *, domain: str = "example.com", seed: int = 7, first_id: int = 1000,
                 emails: Iterable[str] = (), epoch: datetime = EPOCH) -> None:
        self.domain = domain
        self.seed = seed
        self.first_id = first_id
        self.epoch = epoch
        self._lock = threading.Lock()
        self._emails = list(emails)
        self._changed: dict[int, Person] = {}
        self._departed: set[int] = set()
        self._size = size

    @property
    def size(self) -> int:
        return self._size

    def _mix(self, index: int, salt: int) -> int:
        value = (index + 1) * 2654435761 + self.seed * 40503 + salt * 97
        value ^= value >> 13
        return (value * 1103515245 + 12345) & 0x7FFFFFFF

    def _made(self, index: int) -> Person:
        first = FIRST_NAMES[self._mix(index, 1) % len(FIRST_NAMES)]
        last = LAST_NAMES[self._mix(index, 2) % len(LAST_NAMES)]
        email = self._emails[index] if index < len(self._emails) else \
            f"{first.lower()}.{last.lower().replace('-', '')}{index}@{self.domain}"
        department_id, department = DEPARTMENTS[self._mix(index, 3) % len(DEPARTMENTS)]
        office_id, office = OFFICES[self._mix(index, 4) % len(OFFICES)]
        roll = self._mix(index, 5) % 100
        status = "leave" if roll < 4 else "onboarding" if roll < 6 else "inactive" if roll < 8 else "active"
        hired = self.epoch - timedelta(days=30 + self._mix(index, 6) % 3000)
        return Person(
            index=index, id=self.first_id + index, email=email, first_name=first, last_name=last,
            title=TITLES[self._mix(index, 7) % len(TITLES)], department_id=department_id, department=department,
            office_id=office_id, office=office, manager_index=None if index == 0 else (index - 1) // 8,
            status=status, hire_date=hired.date().isoformat(),
            competencies=",".join(COMPETENCIES[(self._mix(index, 8) + step) % len(COMPETENCIES)] for step in (0, 2)),
            review_rating=1 + self._mix(index, 9) % 5, updated_at=self.epoch + timedelta(minutes=index))

    def person(self, index: int) -> Person:
        with self._lock:
            changed = self._changed.get(index)
        return changed or self._made(index)

    def indexes(self) -> list[int]:
        """Employees present now, in id order."""
        with self._lock:
            departed = set(self._departed)
            size = self._size
        return [index for index in range(size) if index not in departed]

    def people(self) -> Iterable[Person]:
        for index in self.indexes():
            yield self.person(index)

    def by_id(self, person_id: int) -> Person | None:
        index = person_id - self.first_id
        if 0 <= index < self._size and index not in self._departed:
            return self.person(index)
        return None

    def change(self, indexes: Iterable[int], *, at: datetime | None = None) -> None:
        """A new title and ``updated_at`` (now, or ``at``) for these employees."""
        moment = at or datetime.now(UTC)
        with self._lock:
            for index in indexes:
                current = self._changed.get(index) or self._made(index)
                title = TITLES[(TITLES.index(current.title) + 1) % len(TITLES)]
                self._changed[index] = replace(current, title=title, updated_at=moment)

    def depart(self, indexes: Iterable[int]) -> None:
        """These employees are gone from the HRMS (a full sync no longer sees them)."""
        with self._lock:
            self._departed.update(indexes)

    def hire(self, count: int) -> list[int]:
        """Add employees at the end; returns their indexes."""
        with self._lock:
            start = self._size
            self._size += count
        return list(range(start, start + count))
