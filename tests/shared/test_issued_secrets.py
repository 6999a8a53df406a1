"""shared/issued_secrets.py: credentials are random, recognisable, and stored only as hashes."""

from __future__ import annotations

import hashlib

from shared.issued_secrets import ADMIN_KEY_PREFIX, issue_secret, new_client_id, secret_hash


def test_an_issued_secret_is_prefixed_random_and_hashed_with_sha256():
    first, second = issue_secret(ADMIN_KEY_PREFIX), issue_secret(ADMIN_KEY_PREFIX)
    assert first.value.startswith("eca_")
    assert len(first.value) >= 4 + 43
    assert first.value != second.value
    assert first.hash == hashlib.sha256(first.value.encode()).hexdigest() == secret_hash(first.value)
    assert first.hint == f"eca_…{first.value[-4:]}"
    assert first.value not in first.hint


def test_client_ids_are_public_identifiers_distinct_from_secrets():
    assert new_client_id().startswith("ecc_")
    assert new_client_id() != new_client_id()
