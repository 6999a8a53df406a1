"""A client that calls the SCIM request handler as the SCIM function does."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from shared.scim.api import ScimCall, handle_scim

ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"
PATCH_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


@dataclass
class Answer:
    status: int
    body: Any
    headers: dict[str, str]


class ScimClient:
    def __init__(self, slug: str, token: str) -> None:
        self.slug = slug
        self.token = token

    def call(self, method: str, path: str, body: Any = None, *, query: dict[str, str] | None = None,
             headers: dict[str, str] | None = None, token: str | None = None, raw: bytes | None = None) -> Answer:
        sent = {"Content-Type": "application/scim+json", **({"Authorization": f"Bearer {token or self.token}"}
                                                             if (token or self.token) else {}), **(headers or {})}
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else b"")
        response = handle_scim(ScimCall(self.slug, method, path, f"https://ec.example/api/scim/v2/{self.slug}",
                                        query or {}, sent, data))
        return Answer(int(response.status), response.body, response.headers)

    def create_user(self, user_name: str, **attributes: Any) -> dict[str, Any]:
        answer = self.call("POST", "/Users", {"schemas": [USER_SCHEMA], "userName": user_name, **attributes})
        assert answer.status == 201, answer.body
        return answer.body

    def create_group(self, display_name: str, members: list[str] = (), **attributes: Any) -> dict[str, Any]:
        answer = self.call("POST", "/Groups", {"schemas": [GROUP_SCHEMA], "displayName": display_name,
                                               "members": [{"value": m} for m in members], **attributes})
        assert answer.status == 201, answer.body
        return answer.body

    def patch(self, path: str, *operations: dict[str, Any], **options: Any) -> Answer:
        return self.call("PATCH", path, {"schemas": [PATCH_SCHEMA], "Operations": list(operations)}, **options)
