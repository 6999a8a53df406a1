"""Azurite, the Azure Storage emulator, from the project's own node_modules (package.json).

It runs with ``--skipApiVersionCheck`` (azure-storage-queue speaks a newer API version than it
knows) and without telemetry; data lives in a folder of ours, or in memory for tests. Azurite
ignores SIGTERM: it is stopped with SIGINT.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
AZURITE = PROJECT_ROOT / "node_modules" / ".bin" / "azurite"
# Azurite's published development account (documented, not a secret).
ACCOUNT = "devstoreaccount1"
ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
DEFAULT_PORTS = (10000, 10001, 10002)


def connection_string(blob_port: int, queue_port: int, table_port: int) -> str:
    base = "http://127.0.0.1:{}/" + ACCOUNT
    return (
        f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};"
        f"BlobEndpoint={base.format(blob_port)};QueueEndpoint={base.format(queue_port)};"
        f"TableEndpoint={base.format(table_port)};"
    )


def port_is_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.2)
        return probe.connect_ex((host, port)) == 0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class Azurite:
    process: subprocess.Popen[bytes]
    ports: tuple[int, int, int]

    @property
    def connection_string(self) -> str:
        return connection_string(*self.ports)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_azurite(
    location: Path | None, *, ports: tuple[int, int, int] | None = None, log_file: Path | None = None
) -> Azurite:
    """Start Azurite and wait until its queue endpoint answers. ``location=None``: in memory."""
    if not AZURITE.exists():
        node = shutil.which("node")
        hint = "run `npm ci` in the project folder" if node else "install Node.js 20+ and run `npm ci`"
        raise RuntimeError(f"Azurite is not installed ({AZURITE} is missing): {hint}")
    ports = ports or (free_port(), free_port(), free_port())
    for port in ports:
        if port_is_open(port):
            raise RuntimeError(f"port {port} is already in use: is another Azurite running?")
    arguments = [
        str(AZURITE), "--silent", "--skipApiVersionCheck", "--disableTelemetry",
        "--blobHost", "127.0.0.1", "--queueHost", "127.0.0.1", "--tableHost", "127.0.0.1",
        "--blobPort", str(ports[0]), "--queuePort", str(ports[1]), "--tablePort", str(ports[2]),
    ]
    if location is None:
        arguments.append("--inMemoryPersistence")
    else:
        location.mkdir(parents=True, exist_ok=True)
        arguments += ["--location", str(location)]
    output = open(log_file, "ab") if log_file else subprocess.DEVNULL  # noqa: SIM115 - owned by the child
    process = subprocess.Popen(arguments, stdout=output, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    azurite = Azurite(process, ports)
    deadline = time.monotonic() + 30
    while not all(port_is_open(port) for port in ports):
        if process.poll() is not None:
            raise RuntimeError(f"Azurite exited with code {process.returncode} before it was ready")
        if time.monotonic() > deadline:
            azurite.stop()
            raise RuntimeError("Azurite did not open its ports within 30 s")
        time.sleep(0.1)
    return azurite
