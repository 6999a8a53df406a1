"""One local host for the package, serving tests/local_host/fixture_app over HTTP and Azurite."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from azure.storage.queue import QueueClient, TextBase64DecodePolicy, TextBase64EncodePolicy

from local.azurite import free_port
from tests.stack import HostProcess, base_environment, start_host, unique

FIXTURE_APP = Path(__file__).parent / "fixture_app"


class FixtureHost:
    def __init__(self, host: HostProcess, record_file: Path, storage: str, queue_name: str) -> None:
        self.host = host
        self.record_file = record_file
        self.storage = storage
        self.queue_name = queue_name

    def records(self, kind: str) -> list[dict]:
        if not self.record_file.exists():
            return []
        lines = self.record_file.read_text().splitlines()
        return [entry for entry in map(json.loads, lines) if entry["kind"] == kind]

    def queue(self, name: str | None = None, *, encoded: bool = True) -> QueueClient:
        """A client of the fixture's queue (or another); ``encoded``: base64 both ways, as the host expects."""
        policies = {"message_encode_policy": TextBase64EncodePolicy(),
                    "message_decode_policy": TextBase64DecodePolicy()} if encoded else {}
        return QueueClient.from_connection_string(self.storage, name or self.queue_name, **policies)


@pytest.fixture(scope="package")
def fixture_host(storage_account: str, tmp_path_factory: pytest.TempPathFactory):
    tmp_path = tmp_path_factory.mktemp("fixture-host")
    record_file = tmp_path / "records.jsonl"
    queue_name = unique("fixture-")
    # The schedule monitor's record says the every-minute timer last ran an hour ago.
    state_dir = tmp_path / "host-state"
    state_dir.mkdir()
    an_hour_ago = (datetime.now(UTC) - timedelta(hours=1)).replace(second=0, microsecond=0)
    (state_dir / "timers.json").write_text(json.dumps({"every_minute": an_hour_ago.isoformat()}))
    env = base_environment() | {
        "AzureWebJobsStorage": storage_account,
        "FIXTURE_QUEUE": queue_name,
        "FIXTURE_SCHEDULE": "*/2 * * * * *",
        "FIXTURE_RECORD_FILE": str(record_file),
    }
    QueueClient.from_connection_string(storage_account, queue_name).create_queue()
    host = start_host(FIXTURE_APP, env, tmp_path, port=free_port())
    yield FixtureHost(host, record_file, storage_account, queue_name)
    host.stop()
