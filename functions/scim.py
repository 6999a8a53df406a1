"""/api/scim/v2/{tenant}/...: the SCIM 2.0 service provider each tenant's IdP provisions through."""

import json

import azure.functions as func

bp = func.Blueprint()

# Every method on one route: the host would answer a method the route does not list with an empty
# 404, where SCIM clients expect a SCIM error.
METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]


@bp.route(route="scim/v2/{tenant}/{*path}", methods=METHODS, auth_level=func.AuthLevel.ANONYMOUS)
def scim(req: func.HttpRequest) -> func.HttpResponse:
    from shared import config
    from shared.scim.api import ScimCall, handle_scim

    tenant = req.route_params["tenant"]
    path = "/" + (req.route_params.get("path") or "")
    origin = config.public_base_url() or req.url.split("/api/", 1)[0]
    call = ScimCall(
        tenant_slug=tenant, method=req.method, path=path, base_url=f"{origin}/api/scim/v2/{tenant}",
        query=dict(req.params), headers=dict(req.headers), body=req.get_body())
    response = handle_scim(call)
    body = json.dumps(response.body) if response.body is not None else None
    return func.HttpResponse(body, status_code=int(response.status), headers=response.headers)
