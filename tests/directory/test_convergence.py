"""Any permutation and duplication of a directory's event stream ends in the state of the ordered
stream (shared/directory/apply.py). Streams are generated as a directory would produce them: users
and groups created, changed, deactivated, deleted, members added and removed, the directory
deleted; then delivered in order to one tenant and shuffled, repeated and cut into arbitrary
batches for another."""

from __future__ import annotations

import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.directory.conftest import deliver, drain, state_of
from tests.stack import unique

USERS = ("ann", "bo", "cy")
GROUPS = ("sales", "ops")

operation = st.one_of(
    st.tuples(st.just("user"), st.sampled_from(USERS), st.sampled_from(["active", "inactive", "suspended"]),
              st.sampled_from(["Ann", "Bo", None]), st.sampled_from([None, "admin", "member"])),
    st.tuples(st.just("delete_user"), st.sampled_from(USERS)),
    st.tuples(st.just("group"), st.sampled_from(GROUPS), st.sampled_from(["Sales", "Ops", "Renamed"])),
    st.tuples(st.just("delete_group"), st.sampled_from(GROUPS)),
    st.tuples(st.just("member"), st.sampled_from(GROUPS), st.sampled_from(USERS), st.booleans()),
)


def build_stream(directory, operations, *, end_with_directory_deletion: bool) -> list[dict]:
    """The events of these operations, in order; operations a real directory could not produce
    (changing a deleted user, a member of a group that does not exist) are left out."""
    users: dict[str, dict] = {}
    groups: dict[str, dict] = {}
    deleted: set[str] = set()
    events = [directory.activated()]
    for op in operations:
        kind, key = op[0], op[1]
        if kind == "user" and key not in deleted:
            _, _, state, first_name, role = op
            event = "dsync.user.updated" if key in users else "dsync.user.created"
            users[key] = directory.user(key, state=state, first_name=first_name, role=role)
            events.append(directory.event(event, users[key]))
        elif kind == "delete_user" and key in users and key not in deleted:
            deleted.add(key)
            events.append(directory.event("dsync.user.deleted", directory.user(key, state="inactive")))
        elif kind == "group" and ("g", key) not in deleted:
            event = "dsync.group.updated" if key in groups else "dsync.group.created"
            groups[key] = directory.group(key, name=op[2])
            events.append(directory.event(event, groups[key]))
        elif kind == "delete_group" and key in groups and ("g", key) not in deleted:
            deleted.add(("g", key))
            events.append(directory.event("dsync.group.deleted", directory.group(key, name=groups[key]["name"])))
        elif kind == "member":
            _, group, user, added = op
            if group in groups and user in users and ("g", group) not in deleted and user not in deleted:
                events.append(directory.membership(added, users[user], groups[group]))
    if end_with_directory_deletion:
        events.append(directory.deleted())
    return events


@settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(operations=st.lists(operation, min_size=1, max_size=14), end_with_deletion=st.booleans(),
       seed=st.integers(0, 2**32 - 1))
def test_any_permutation_and_duplication_ends_in_the_state_of_the_ordered_stream(
        make_directory, operations, end_with_deletion, seed):
    ordered_tenant, ordered_directory = make_directory(unique("in-order-"))
    shuffled_tenant, shuffled_directory = make_directory(unique("shuffled-"))
    # The same stream for both directories: built twice with the same operations and clock.
    shuffled_directory.clock = ordered_directory.clock
    ordered = build_stream(ordered_directory, operations, end_with_directory_deletion=end_with_deletion)
    shuffled = build_stream(shuffled_directory, operations, end_with_directory_deletion=end_with_deletion)

    for event in ordered:  # one by one, in order
        deliver([event])
        drain(ordered_tenant, ordered_directory)

    rng = random.Random(seed)
    delivery = shuffled + rng.sample(shuffled, k=rng.randint(0, len(shuffled)))  # some twice
    rng.shuffle(delivery)
    while delivery:  # arbitrary batches, each drained (a late duplicate meets a finished inbox row)
        size = rng.randint(1, len(delivery))
        batch, delivery = delivery[:size], delivery[size:]
        deliver(batch)
        drain(shuffled_tenant, shuffled_directory)

    assert state_of(shuffled_tenant, shuffled_directory) == state_of(ordered_tenant, ordered_directory)
