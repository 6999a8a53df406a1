"""Field mappings: which source attributes of the tenant's HRMS feed which context keys.

Contract (tests/hrms/test_mapping.py): ``check_mapping`` accepts a mapping whose context keys are lowercase
letters, digits and underscores and whose every source attribute is one the HRMS lets the tenant's
credential read (asked from the HRMS: ``Connector.attributes()``); otherwise ``InvalidValue`` names every
bad key and every unknown attribute at once (with what can be read, when the list is short enough to
show). ``save_mapping`` checks, then writes the mapping into the tenant's HRMS settings; the next sync
applies it.
"""

from __future__ import annotations

import psycopg

from shared.tenants.models import HrmsSettings, InvalidValue, Tenant, parse_field_mapping

SHOWN_ATTRIBUTES = 40


def readable_attributes(hrms: HrmsSettings) -> list[str]:
    from shared.hrms.engine import open_connector

    connector = open_connector(hrms)
    try:
        return sorted(connector.attributes())
    finally:
        connector.close()


def check_mapping(hrms: HrmsSettings, mapping: object, *, readable: list[str] | None = None) -> dict[str, str]:
    checked = parse_field_mapping(mapping)
    readable = readable if readable is not None else readable_attributes(hrms)
    unknown = sorted({source for source in checked.values() if source not in set(readable)})
    if unknown:
        shown = f"; readable: {', '.join(readable)}" if len(readable) <= SHOWN_ATTRIBUTES else \
            f"; {len(readable)} attributes are readable (`hrms attributes TENANT` lists them)"
        raise InvalidValue("hrms.field_mapping", f"unknown source attributes for {hrms.kind}: "
                           f"{', '.join(repr(name) for name in unknown)}{shown}")
    return checked


def save_mapping(conn: psycopg.Connection, tenant: Tenant, mapping: object, *,
                 readable: list[str] | None = None) -> Tenant:
    from shared.tenants.registry import TenantChanges, update_tenant

    if tenant.hrms is None:
        raise InvalidValue("hrms", f"tenant {tenant.slug!r} has no HRMS settings (tenant update --hrms ...)")
    checked = check_mapping(tenant.hrms, mapping, readable=readable)
    return update_tenant(conn, tenant.slug, TenantChanges(hrms={**tenant.hrms.as_dict(), "field_mapping": checked}))
