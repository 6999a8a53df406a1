"""Small HTTP response helpers shared by the HTTP functions."""

from __future__ import annotations

import json
from typing import Any

import azure.functions as func


def json_response(body: Any, *, status: int = 200, headers: dict[str, str] | None = None) -> func.HttpResponse:
    return func.HttpResponse(
        json.dumps(body, separators=(",", ":")),
        status_code=status,
        mimetype="application/json",
        headers={"Cache-Control": "no-store", **(headers or {})},
    )
