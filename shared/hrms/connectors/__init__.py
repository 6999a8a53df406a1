"""One module per HRMS, each exposing ``connect(settings: ConnectorSettings) -> Connector`` (see base.py).
A new HRMS is one new module and one line in ``MODULES``."""

from __future__ import annotations

import importlib

from shared.hrms.connectors.base import Connector, ConnectorError, ConnectorSettings, Writer

MODULES = {"personio": "personio", "personio-v2": "personio_v2", "bamboohr": "bamboohr", "hibob": "hibob",
           "merge": "merge"}


def connect(kind: str, settings: ConnectorSettings) -> Connector:
    if kind not in MODULES:
        raise ValueError(f"no connector for HRMS {kind!r} (known: {', '.join(MODULES)})")
    module = importlib.import_module(f"shared.hrms.connectors.{MODULES[kind]}")
    return module.connect(settings)


def supports_incremental(kind: str) -> bool:
    module = importlib.import_module(f"shared.hrms.connectors.{MODULES[kind]}")
    return any(getattr(value, "supports_incremental", False) for value in vars(module).values()
               if isinstance(value, type) and getattr(value, "kind", None) == kind)


def writer(kind: str, settings: ConnectorSettings) -> Writer:
    """The HRMS's write-back, for the modules that have one (``writer(settings)``)."""
    module = importlib.import_module(f"shared.hrms.connectors.{MODULES[kind]}")
    make = getattr(module, "writer", None)
    if make is None:
        raise ConnectorError(f"writing results back is not available for {kind}", retryable=False)
    return make(settings)
