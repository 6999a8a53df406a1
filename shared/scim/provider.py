"""The SCIM service this project offers: its schemas, resource types, capabilities and tolerance.

- Resources: ``User`` (core schema, the enterprise extension, and this project's extension carrying
  the Entra object id) and ``Group``, as RFC 7643 defines them.
- Capabilities announced in ``/ServiceProviderConfig``: PATCH, Bulk (``MAX_OPERATIONS`` operations,
  ``MAX_PAYLOAD_BYTES`` bytes — the same limit applies to every request body), filters (at most
  ``MAX_RESULTS`` a page), sorting, ETags, index and cursor paging (RFC 9865), Bearer tokens.
- Tolerance (``POLICY``), for what Entra ID and Okta really send: unknown attributes are dropped
  (never echoed), a PATCH ``remove`` may carry the values to remove, and a filtered PATCH path
  that matches no entry creates it.
- A group member's ``display`` is read-only (RFC 7643 §2.4) and not kept: members are ``value``,
  ``type`` and ``$ref``.
- PATCH answers 200 with the resource (Okta, Entra user samples and scim-sanity expect it), not
  the 204 the library answers by default.
"""

from __future__ import annotations

from functools import cache
from http import HTTPStatus
from typing import Any

from scim2_models import (
    AuthenticationScheme,
    Bulk,
    ChangePassword,
    Context,
    ETag,
    External,
    Filter,
    Pagination,
    Patch,
    Reference,
    Resource,
    ResourceType,
    ResponseParameters,
    Schema,
    ScimPolicy,
    ScimProvider,
    ServiceProviderConfig,
    Sort,
)
from scim2_server.responses import ScimResponse
from scim2_server.service import ScimService
from scim2_server.utils import load_default_resource_types, load_default_schemas

USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"
ENTERPRISE_SCHEMA = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
# Where an IdP admin may map Entra's objectId when externalId carries something else.
IDENTITY_SCHEMA = "urn:ietf:params:scim:schemas:extension:enterpriseconnections:2.0:User"
KNOWN_SCHEMAS = frozenset({USER_SCHEMA, GROUP_SCHEMA, ENTERPRISE_SCHEMA, IDENTITY_SCHEMA})

MAX_OPERATIONS = 1000
MAX_PAYLOAD_BYTES = 1_048_576
MAX_RESULTS = 1000
CURSOR_TIMEOUT_SECONDS = 3600

POLICY = ScimPolicy(
    unknown=ScimPolicy.Unknown.ignore,
    remove_value_as_filter=ScimPolicy.RemoveValue.apply,
    unmatched_path_filter=ScimPolicy.UnmatchedPathFilter.create,
)

_IDENTITY_EXTENSION = {
    "id": IDENTITY_SCHEMA,
    "name": "IdentityUser",
    "description": "Identifiers that link a SCIM user to its other identities (sign-in, Directory Sync).",
    "attributes": [{
        "name": "entraObjectId",
        "type": "string",
        "multiValued": False,
        "description": "The user's Microsoft Entra object id: map objectId here when externalId carries "
                       "something else.",
        "required": False,
        "caseExact": False,
        "mutability": "readWrite",
        "returned": "default",
        "uniqueness": "none",
    }],
    "meta": {"resourceType": "Schema", "location": f"/v2/Schemas/{IDENTITY_SCHEMA}"},
}

BEARER_SCHEME = AuthenticationScheme(
    type=AuthenticationScheme.Type.oauthbearertoken,
    name="SCIM token",
    description="A Bearer token issued per tenant by `python -m shared.cli scim-token create TENANT`",
    spec_uri=Reference[External]("https://datatracker.ietf.org/doc/html/rfc6750"),
    primary=True,
)


def _config() -> ServiceProviderConfig:
    return ServiceProviderConfig(
        patch=Patch(supported=True),
        bulk=Bulk(supported=True, max_operations=MAX_OPERATIONS, max_payload_size=MAX_PAYLOAD_BYTES),
        filter=Filter(supported=True, max_results=MAX_RESULTS),
        change_password=ChangePassword(supported=False),
        sort=Sort(supported=True),
        etag=ETag(supported=True),
        pagination=Pagination(
            cursor=True, index=True, default_pagination_method=Pagination.DefaultPaginationMethod.index,
            default_page_size=100, max_page_size=MAX_RESULTS, cursor_timeout=CURSOR_TIMEOUT_SECONDS),
        authentication_schemes=[BEARER_SCHEME],
    )


def _with_read_only_member_display(schema: Schema) -> Schema:
    """Group members' display is read-only, as RFC 7643 §2.4 has it: what a client sends is not kept."""
    if schema.id != GROUP_SCHEMA:
        return schema
    document = schema.model_dump()
    for attribute in document["attributes"]:
        if attribute["name"] == "members":
            for sub_attribute in attribute["subAttributes"]:
                if sub_attribute["name"] == "display":
                    sub_attribute["mutability"] = "readOnly"
    return Schema.model_validate(document)


@cache
def scim_provider() -> ScimProvider:
    """The schemas, resource types, configuration and policy of the service (built once)."""
    schemas = [*(_with_read_only_member_display(schema) for schema in load_default_schemas().values()),
               Schema.model_validate(_IDENTITY_EXTENSION)]
    resource_types = []
    for resource_type in load_default_resource_types().values():
        if resource_type.id == "User":
            resource_type = ResourceType.model_validate({
                **resource_type.model_dump(),
                "schemaExtensions": [{"schema": ENTERPRISE_SCHEMA, "required": False},
                                     {"schema": IDENTITY_SCHEMA, "required": False}],
            })
        resource_types.append(resource_type)
    return ScimProvider.from_discovery(schemas, resource_types, config=_config(), policy=POLICY)


def resource_type_named(name: str) -> ResourceType:
    return next(resource_type for resource_type in scim_provider().resource_types if resource_type.id == name)


class ScimServiceWithFullPatchResponses(ScimService):
    def patch_response(
        self, base_url: str, resource: Resource[Any], response_parameters: ResponseParameters[Any]
    ) -> ScimResponse:
        published = self.publish(base_url, resource)
        response = self.resource_response(published, Context.RESOURCE_REPLACEMENT_RESPONSE, response_parameters)
        response.status = HTTPStatus.OK
        return response


@cache
def scim_service(cursor_secret: str) -> ScimService:
    return ScimServiceWithFullPatchResponses(scim_provider(), secret=cursor_secret)
