"""/api/admin/...: the admin API for the dashboard and ops (admin keys; every call audited)."""

import azure.functions as func

from functions.http import json_response

bp = func.Blueprint()

# The Functions host refuses function routes that start with "admin" (its own API lives at /admin,
# whatever the route prefix); a first segment constrained to "admin" serves /api/admin/... all the same.
ADMIN = "{area:regex(^admin$)}"


def _serve(req: func.HttpRequest, action: str, handler_name: str) -> func.HttpResponse:
    from shared.admin import api

    # Route values win over query parameters of the same name; a JSON body comes as "body".
    params = {**dict(req.params), **dict(req.route_params)}
    if req.method in ("POST", "PUT"):
        params["body"] = req.get_body().decode("utf-8", errors="replace")
    response = api.handle(
        action, getattr(api, handler_name), authorization=req.headers.get("Authorization"),
        source=api.client_address(req.headers.get("X-Forwarded-For")), params=params)
    return json_response(response.body, status=response.status, headers=response.headers)


@bp.route(route=f"{ADMIN}/tenants", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def admin_list_tenants(req: func.HttpRequest) -> func.HttpResponse:
    return _serve(req, "tenants.list", "list_tenants")


@bp.route(route=f"{ADMIN}/tenants/{{slug}}", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def admin_show_tenant(req: func.HttpRequest) -> func.HttpResponse:
    return _serve(req, "tenants.show", "show_tenant")


@bp.route(route=f"{ADMIN}/tenants/{{slug}}/users", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def admin_list_users(req: func.HttpRequest) -> func.HttpResponse:
    return _serve(req, "users.list", "list_users")


@bp.route(route=f"{ADMIN}/tenants/{{slug}}/users/{{user_id}}", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def admin_show_user(req: func.HttpRequest) -> func.HttpResponse:
    return _serve(req, "users.show", "show_user")


@bp.route(route=f"{ADMIN}/tenants/{{slug}}/workos-portal", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def admin_workos_portal(req: func.HttpRequest) -> func.HttpResponse:
    return _serve(req, "tenants.workos-portal", "workos_portal")


@bp.route(route=f"{ADMIN}/alerts", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
def admin_send_alert(req: func.HttpRequest) -> func.HttpResponse:
    return _serve(req, "alerts.send", "send_alert")


@bp.route(route=f"{ADMIN}/alerts/{{slug}}/{{alert_id}}", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def admin_show_alert(req: func.HttpRequest) -> func.HttpResponse:
    return _serve(req, "alerts.show", "show_alert")


@bp.route(route=f"{ADMIN}/tenants/{{slug}}/hrms/sync", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
def admin_hrms_sync(req: func.HttpRequest) -> func.HttpResponse:
    return _serve(req, "hrms.sync", "hrms_sync")


@bp.route(route=f"{ADMIN}/tenants/{{slug}}/hrms/runs", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def admin_hrms_runs(req: func.HttpRequest) -> func.HttpResponse:
    return _serve(req, "hrms.runs", "hrms_runs")


@bp.route(route=f"{ADMIN}/tenants/{{slug}}/hrms/mapping", methods=["PUT"], auth_level=func.AuthLevel.ANONYMOUS)
def admin_hrms_mapping(req: func.HttpRequest) -> func.HttpResponse:
    return _serve(req, "hrms.mapping", "hrms_mapping")


@bp.route(route=f"{ADMIN}/tenants/{{slug}}/hrms/writeback", methods=["PUT"], auth_level=func.AuthLevel.ANONYMOUS)
def admin_hrms_writeback(req: func.HttpRequest) -> func.HttpResponse:
    return _serve(req, "hrms.writeback", "hrms_writeback")
