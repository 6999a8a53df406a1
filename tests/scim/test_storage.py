"""The Postgres ScimStorage against scim2-server's own storage contract."""

from __future__ import annotations

import itertools

import pytest
from scim2_server.testing import ScimStorageContract

from shared import db
from shared.identity.models import Actor, ActorKind
from shared.scim.provider import scim_provider
from shared.scim.storage import PostgresScimStorage

_tenants = itertools.count()


class TestPostgresScimStorage(ScimStorageContract):
    @pytest.fixture
    def provider(self):
        return scim_provider()

    @pytest.fixture(params=[False, True], ids=["reads", "reads-for-update"])
    def storage(self, request, make_tenant):
        # reads-for-update: how a writing request uses it (the write reuses the row its read locked).
        tenant = make_tenant(f"contract-{next(_tenants)}", provisioning="scim")
        with db.transaction(tenant_id=tenant.id) as conn:
            yield PostgresScimStorage(conn, tenant, Actor(ActorKind.SCIM_TOKEN, "contract"), lock_reads=request.param)
