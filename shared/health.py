"""Health: can this instance reach its database (with a current schema) and its queues?

Contract (tests/shared/test_health.py, tests/e2e/test_health.py):
- each part is "ok" or a short reason ("unreachable", "misconfigured", "schema behind: ...",
  "missing queues: ..."); the overall status is "ok" only when every part is;
- no reason carries a stack trace, a host name or a secret: details go to the log;
- both parts are checked at the same time, each within a few seconds.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from shared import __version__
from shared.config import ConfigurationError

log = logging.getLogger(__name__)

OK = "ok"
CHECK_TIMEOUT_SECONDS = 3.0


@dataclass(frozen=True)
class HealthReport:
    database: str
    queues: str
    version: str = __version__

    @property
    def ok(self) -> bool:
        return self.database == OK and self.queues == OK

    def as_dict(self) -> dict[str, str]:
        return {
            "status": OK if self.ok else "unhealthy",
            "database": self.database,
            "queues": self.queues,
            "version": self.version,
        }


def check_database() -> str:
    from shared import db

    try:
        with db.sync_pool().connection(timeout=CHECK_TIMEOUT_SECONDS) as conn:
            conn.execute("SELECT 1")
            db.ensure_schema_current(conn)
    except ConfigurationError as error:
        log.error("health: database misconfigured: %s", error)
        return "misconfigured"
    except db.SchemaNotCurrent as error:
        log.error("health: %s", error)
        return "schema behind: run `python -m shared.cli migrate`"
    except Exception as error:  # any driver or pool failure means the same to a load balancer
        log.error("health: database unreachable: %s: %s", type(error).__name__, error)
        return "unreachable"
    return OK


def check_queues() -> str:
    from shared import queues

    try:
        missing = queues.missing_queues(timeout_seconds=CHECK_TIMEOUT_SECONDS)
    except ConfigurationError as error:
        log.error("health: queue storage misconfigured: %s", error)
        return "misconfigured"
    except Exception as error:  # any SDK or transport failure
        log.error("health: queue storage unreachable: %s: %s", type(error).__name__, error)
        return "unreachable"
    if missing:
        return "missing queues: " + ", ".join(missing)
    return OK


def check_health() -> HealthReport:
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="health") as pool:
        database = pool.submit(check_database)
        queues = pool.submit(check_queues)
        return HealthReport(database=database.result(), queues=queues.result())
