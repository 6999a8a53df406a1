"""Replays of what Microsoft Entra ID and Okta send (../shared/references/scim.md), asserting the effect
of each request on the resource and on the identity store, not just a 2xx."""

from __future__ import annotations

import uuid

import pytest

from shared import db
from shared.identity import store
from shared.identity.models import UserStatus
from shared.tenants.registry import get_tenant
from tests.scim_client import ENTERPRISE, GROUP_SCHEMA, USER_SCHEMA

MS_GROUP_URN = "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"


def _identity_user(slug: str, user_id: str):
    with db.transaction() as conn:
        tenant = get_tenant(conn, slug)
        return store.get_user(conn, tenant, user_id)


@pytest.fixture
def ann(scim):
    return scim.create_user("ann@acme.com", externalId="ann", active=True, displayName="Ann Berg",
                            name={"givenName": "Ann", "familyName": "Berg"},
                            emails=[{"type": "work", "value": "ann@acme.com", "primary": True}])


# --- Microsoft Entra ID -------------------------------------------------------------------------------------


def test_entra_post_with_meta_empty_roles_and_nulls_is_accepted(scim):
    created = scim.call("POST", "/Users", {
        "schemas": [USER_SCHEMA, ENTERPRISE], "externalId": "jdoe", "userName": "jdoe@acme.com", "active": True,
        "displayName": "John Doe", "meta": {"resourceType": "User"}, "roles": [], "title": None,
        "name": {"formatted": "John Doe", "familyName": "Doe", "givenName": "John"},
        "emails": [{"primary": True, "type": "work", "value": "jdoe@acme.com"}],
        ENTERPRISE: {"department": None, "employeeNumber": "42"},
    })
    assert created.status == 201, created.body
    assert created.headers["Location"] == created.body["meta"]["location"]
    assert created.headers["ETag"] == created.body["meta"]["version"]
    assert created.body[ENTERPRISE] == {"employeeNumber": "42"}
    user = _identity_user("acme", created.body["id"])
    assert (user.primary_email, user.given_name, user.family_name, user.status) == (
        "jdoe@acme.com", "John", "Doe", UserStatus.ACTIVE)


@pytest.mark.parametrize("op", ["Replace", "replace", "REPLACE"])
@pytest.mark.parametrize("value", ["False", "false", False])
def test_entra_deactivates_with_any_case_op_and_string_booleans(scim, ann, op, value):
    answer = scim.patch(f"/Users/{ann['id']}", {"op": op, "path": "active", "value": value})
    assert answer.status == 200, answer.body
    assert answer.body["active"] is False
    assert scim.call("GET", f"/Users/{ann['id']}").body["active"] is False  # still readable
    assert _identity_user("acme", ann["id"]).status is UserStatus.INACTIVE


def test_entra_reactivates_with_add_and_a_string_boolean(scim, ann):
    scim.patch(f"/Users/{ann['id']}", {"op": "Replace", "path": "active", "value": "False"})
    answer = scim.patch(f"/Users/{ann['id']}", {"op": "Add", "path": "active", "value": "True"})
    assert answer.body["active"] is True
    assert _identity_user("acme", ann["id"]).status is UserStatus.ACTIVE


def test_entra_filtered_value_path_replaces_the_matching_entry(scim, ann):
    answer = scim.patch(f"/Users/{ann['id']}",
                        {"op": "Replace", "path": 'emails[type eq "work"].value', "value": "ann.berg@acme.com"})
    assert answer.body["emails"] == [{"type": "work", "value": "ann.berg@acme.com", "primary": True}]
    assert _identity_user("acme", ann["id"]).primary_email == "ann.berg@acme.com"


def test_entra_filtered_value_path_creates_the_missing_entry(scim, ann):
    answer = scim.patch(f"/Users/{ann['id']}",
                        {"op": "Add", "path": 'addresses[type eq "work"].postalCode', "value": "10115"},
                        {"op": "Add", "path": 'phoneNumbers[type eq "mobile"].value', "value": "+49 30 1234"})
    assert answer.status == 200, answer.body
    assert answer.body["addresses"] == [{"type": "work", "postalCode": "10115"}]
    assert answer.body["phoneNumbers"] == [{"type": "mobile", "value": "+49 30 1234"}]


def test_entra_pathless_patch_with_dotted_and_urn_keys(scim, ann):
    answer = scim.patch(f"/Users/{ann['id']}", {"op": "Replace", "value": {
        "name.givenName": "Annie", "displayName": "Annie Berg", f"{ENTERPRISE}:employeeNumber": "7",
        f"{ENTERPRISE}:department": "Sales"}})
    assert answer.status == 200, answer.body
    assert answer.body["name"]["givenName"] == "Annie"
    assert answer.body[ENTERPRISE] == {"employeeNumber": "7", "department": "Sales"}
    user = _identity_user("acme", ann["id"])
    assert (user.given_name, user.display_name) == ("Annie", "Annie Berg")


@pytest.mark.parametrize("value", [
    [{"$ref": None, "value": "boss-id"}], "boss-id", {"value": "boss-id"}, {"value": "boss-id", "$ref": None}])
def test_entra_manager_in_every_shape_is_answered_as_a_complex_value(scim, ann, value):
    answer = scim.patch(f"/Users/{ann['id']}", {"op": "Add", "path": f"{ENTERPRISE}:manager", "value": value})
    assert answer.status == 200, answer.body
    assert answer.body[ENTERPRISE]["manager"] == {"value": "boss-id"}
    assert scim.call("GET", f"/Users/{ann['id']}").body[ENTERPRISE]["manager"] == {"value": "boss-id"}


def test_entra_manager_as_a_plain_string_in_a_pathless_patch_and_a_post(scim):
    created = scim.create_user("bo@acme.com", **{"schemas": [USER_SCHEMA, ENTERPRISE],
                                                 ENTERPRISE: {"manager": "boss-1"}})
    assert created[ENTERPRISE]["manager"] == {"value": "boss-1"}
    answer = scim.patch(f"/Users/{created['id']}", {"op": "replace", "value": {f"{ENTERPRISE}:manager": "boss-2"}})
    assert answer.body[ENTERPRISE]["manager"] == {"value": "boss-2"}


def test_entra_group_with_microsoft_urn_is_accepted_and_the_urn_never_echoed(scim):
    created = scim.call("POST", "/Groups", {"schemas": [GROUP_SCHEMA, MS_GROUP_URN], "displayName": "Sales",
                                            "externalId": "sales", "members": []})
    assert created.status == 201, created.body
    assert MS_GROUP_URN not in created.body["schemas"]
    assert MS_GROUP_URN not in str(scim.call("GET", f"/Groups/{created.body['id']}").body)


def test_entra_removes_only_the_named_members_in_both_forms(scim):
    people = [scim.create_user(f"p{n}@acme.com")["id"] for n in range(4)]
    group = scim.create_group("Sales", people)
    legacy = scim.patch(f"/Groups/{group['id']}",
                        {"op": "Remove", "path": "members", "value": [{"value": people[0]}]})
    assert legacy.status == 200, legacy.body
    filtered = scim.patch(f"/Groups/{group['id']}", {"op": "Remove", "path": f'members[value eq "{people[1]}"]'})
    assert filtered.status == 200
    members = {member["value"] for member in scim.call("GET", f"/Groups/{group['id']}").body["members"]}
    assert members == {people[2], people[3]}


def test_entra_adds_several_members_with_null_refs(scim):
    people = [scim.create_user(f"p{n}@acme.com")["id"] for n in range(3)]
    group = scim.create_group("Sales")
    answer = scim.patch(f"/Groups/{group['id']}", {"op": "Add", "path": "members", "value": [
        {"$ref": None, "value": people[0]}, {"$ref": None, "value": people[1]}]})
    assert answer.status == 200
    assert {member["value"] for member in answer.body["members"]} == set(people[:2])
    assert answer.headers["ETag"] != group["meta"]["version"]


def test_entra_queries(scim, ann):
    group = scim.create_group("Sales", [ann["id"]])
    by_user_name = scim.call("GET", "/Users", query={"filter": 'userName eq "ANN@acme.com"'})
    by_external_id = scim.call("GET", "/Users", query={"filter": 'externalId eq "ann"'})
    by_work_email = scim.call("GET", "/Users", query={"filter": 'emails[type eq "work"].value eq "Ann@Acme.com"'})
    by_display_name = scim.call("GET", "/Groups", query={
        "filter": 'displayName eq "sales"', "excludedAttributes": "members"})
    for answer in (by_user_name, by_external_id, by_work_email):
        assert [user["id"] for user in answer.body["Resources"]] == [ann["id"]]
    assert [found["id"] for found in by_display_name.body["Resources"]] == [group["id"]]
    assert "members" not in by_display_name.body["Resources"][0]
    assert scim.call("GET", "/Users", query={"filter": 'externalId eq "ANN"'}).body["totalResults"] == 0


def test_entra_test_connection_gets_an_empty_list(scim, ann):
    answer = scim.call("GET", "/Users", query={"filter": f'id eq "{uuid.uuid4()}"'})
    assert answer.status == 200
    assert (answer.body["totalResults"], answer.body["Resources"]) == (0, [])
    answer = scim.call("GET", "/Users", query={"filter": "id eq \"not-even-a-guid\""})
    assert answer.body["totalResults"] == 0


def test_entra_group_display_names_are_unique(scim):
    scim.create_group("Sales")
    duplicate = scim.call("POST", "/Groups", {"schemas": [GROUP_SCHEMA], "displayName": "SALES"})
    assert (duplicate.status, duplicate.body["scimType"]) == (409, "uniqueness")


def test_entra_object_id_is_kept_from_a_guid_external_id_when_the_tenant_uses_entra(scim_tenant):
    object_id = "3f2504e0-4f89-11d3-9a0c-0305e82c3301"
    client = scim_tenant("contoso", teams_tenant_id="11111111-2222-3333-4444-555555555555")
    created = client.create_user("ann@contoso.com", externalId=object_id.upper())
    assert _identity_user("contoso", created["id"]).entra_object_id == object_id


def test_entra_object_id_from_the_identity_extension(scim):
    object_id = "3f2504e0-4f89-11d3-9a0c-0305e82c3301"
    extension = "urn:ietf:params:scim:schemas:extension:enterpriseconnections:2.0:User"
    created = scim.create_user("ann@acme.com", externalId="ann", **{
        "schemas": [USER_SCHEMA, extension], extension: {"entraObjectId": object_id}})
    assert _identity_user("acme", created["id"]).entra_object_id == object_id


def test_a_guid_external_id_is_not_taken_for_an_entra_id_when_the_tenant_does_not_use_entra(scim):
    created = scim.create_user("ann@acme.com", externalId="3f2504e0-4f89-11d3-9a0c-0305e82c3301")
    assert _identity_user("acme", created["id"]).entra_object_id is None


# --- Okta ------------------------------------------------------------------------------------------------------


def test_okta_lookup_pages_with_integers_in_a_stable_order(scim):
    for n in range(5):
        scim.create_user(f"user{n}@acme.com")
    first = scim.call("GET", "/Users", query={"filter": 'userName sw "user"', "startIndex": "1", "count": "2"})
    second = scim.call("GET", "/Users", query={"filter": 'userName sw "user"', "startIndex": "3", "count": "2"})
    again = scim.call("GET", "/Users", query={"filter": 'userName sw "user"', "startIndex": "1", "count": "2"})
    assert (first.body["totalResults"], first.body["startIndex"], first.body["itemsPerPage"]) == (5, 1, 2)
    assert isinstance(first.body["totalResults"], int)
    assert [u["id"] for u in first.body["Resources"]] == [u["id"] for u in again.body["Resources"]]
    assert not {u["id"] for u in first.body["Resources"]} & {u["id"] for u in second.body["Resources"]}


def test_okta_duplicate_user_gets_409(scim, ann):
    duplicate = scim.call("POST", "/Users", {"schemas": [USER_SCHEMA], "userName": "Ann@Acme.com"})
    assert (duplicate.status, duplicate.body["scimType"]) == (409, "uniqueness")


def test_okta_full_put_deactivates_and_ignores_the_read_only_id(scim, ann):
    answer = scim.call("PUT", f"/Users/{ann['id']}", {
        "schemas": [USER_SCHEMA], "id": ann["id"], "userName": "ann@acme.com", "active": False,
        "name": {"givenName": "Ann", "familyName": "Berg"}, "emails": [{"value": "ann@acme.com", "primary": True}]})
    assert answer.status == 200, answer.body
    assert answer.body["active"] is False
    assert _identity_user("acme", ann["id"]).status is UserStatus.INACTIVE


def test_okta_pathless_replace_deactivates(scim, ann):
    answer = scim.patch(f"/Users/{ann['id']}", {"op": "replace", "value": {"active": False}})
    assert answer.body["active"] is False


def test_okta_group_push_rename_and_membership(scim):
    people = [scim.create_user(f"p{n}@acme.com")["id"] for n in range(3)]
    group = scim.call("POST", "/Groups", {"schemas": [GROUP_SCHEMA], "displayName": "Okta Group", "members": []}).body
    renamed = scim.patch(f"/Groups/{group['id']}", {"op": "replace", "value": {
        "id": group["id"], "displayName": "Okta Group Renamed"}})
    assert renamed.status == 200, renamed.body
    assert renamed.body["displayName"] == "Okta Group Renamed"
    scim.patch(f"/Groups/{group['id']}",
               {"op": "add", "path": "members", "value": [{"value": people[0]}, {"value": people[1]}]})
    changed = scim.patch(f"/Groups/{group['id']}",
                         {"op": "remove", "path": f'members[value eq "{people[0]}"]'},
                         {"op": "add", "path": "members", "value": [{"value": people[2], "display": "p2"}]})
    assert {member["value"] for member in changed.body["members"]} == {people[1], people[2]}
    replaced = scim.patch(f"/Groups/{group['id']}",
                          {"op": "replace", "path": "members", "value": [{"value": people[0]}]})
    assert [member["value"] for member in replaced.body["members"]] == [people[0]]


# --- others ---------------------------------------------------------------------------------------------------


def test_onelogin_null_id_in_a_post_is_ignored(scim):
    answer = scim.call("POST", "/Users", {"schemas": [USER_SCHEMA], "id": None, "userName": "ol@acme.com"})
    assert answer.status == 201, answer.body
    assert answer.body["id"]
