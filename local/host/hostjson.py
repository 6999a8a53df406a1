"""The parts of host.json the local host honours, with the real host's defaults."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path


def parse_timespan(value: str) -> float:
    """Seconds in a .NET TimeSpan such as ``00:00:30``, ``1.02:00:00`` or ``00:00:00.500``."""
    match = re.fullmatch(r"(?:(\d+)\.)?(\d{1,2}):(\d{2}):(\d{2})(?:\.(\d+))?", value.strip())
    if match is None:
        raise ValueError(f"not a TimeSpan (d.hh:mm:ss): {value!r}")
    days, hours, minutes, seconds, fraction = match.groups()
    total = int(days or 0) * 86400 + int(hours) * 3600 + int(minutes) * 60 + int(seconds)
    return total + (float(f"0.{fraction}") if fraction else 0.0)


@dataclass(frozen=True)
class QueueOptions:
    batch_size: int = 16
    new_batch_threshold: int = 8
    max_dequeue_count: int = 5
    visibility_timeout: float = 0.0
    max_polling_interval: float = 60.0
    message_encoding: str = "base64"


@dataclass(frozen=True)
class HostConfig:
    route_prefix: str = "api"
    queues: QueueOptions = QueueOptions()
    function_timeout: float | None = None

    @classmethod
    def load(cls, path: Path) -> HostConfig:
        document = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
        extensions = document.get("extensions", {})
        http = extensions.get("http", {})
        queue = extensions.get("queues", {})
        defaults = QueueOptions()
        batch_size = int(queue.get("batchSize", defaults.batch_size))
        encoding = str(queue.get("messageEncoding", defaults.message_encoding)).lower()
        if encoding not in ("base64", "none"):
            raise ValueError(f"host.json: queues.messageEncoding must be base64 or none, not {encoding!r}")
        options = QueueOptions(
            batch_size=batch_size,
            new_batch_threshold=int(queue.get("newBatchThreshold", batch_size // 2)),
            max_dequeue_count=int(queue.get("maxDequeueCount", defaults.max_dequeue_count)),
            visibility_timeout=parse_timespan(queue.get("visibilityTimeout", "00:00:00")),
            max_polling_interval=parse_timespan(queue.get("maxPollingInterval", "00:01:00")),
            message_encoding=encoding,
        )
        timeout = document.get("functionTimeout")
        return cls(
            route_prefix=str(http.get("routePrefix", "api")).strip("/"),
            queues=options,
            function_timeout=parse_timespan(timeout) if timeout else None,
        )
