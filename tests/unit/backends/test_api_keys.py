"""API key secrets and page cursors: the pure helpers the store adapters share."""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime

import pytest

from ragplatform.backends.store.api_keys import (
    api_key_matches,
    generate_api_key,
    hash_api_key,
    looks_like_api_key,
)
from ragplatform.backends.store.pagination import clamp_limit, decode_cursor, encode_cursor
from ragplatform.domain.errors import InvalidArgument


def test_generated_keys_have_the_prefix_and_are_unique() -> None:
    keys = {generate_api_key() for _ in range(200)}
    assert len(keys) == 200
    for key in keys:
        assert key.startswith("rag_")
        assert len(key) == 4 + 43
        assert looks_like_api_key(key)


def test_the_hash_is_the_sha256_hex_of_the_key() -> None:
    key = generate_api_key()
    assert hash_api_key(key) == hashlib.sha256(key.encode()).hexdigest()
    assert hash_api_key(key) != key
    assert hash_api_key(key) != hash_api_key(generate_api_key())


def test_a_key_matches_only_its_own_hash() -> None:
    key, other = generate_api_key(), generate_api_key()
    assert api_key_matches(key, hash_api_key(key))
    assert not api_key_matches(other, hash_api_key(key))
    assert not api_key_matches(key, "")


@pytest.mark.parametrize("value", ["", "rag_", "sk-abcdefghijklmnopqrstuvwxyz", "rag_" + "x" * 300])
def test_values_that_cannot_be_keys_are_spotted(value: str) -> None:
    assert not looks_like_api_key(value)


def test_a_cursor_round_trips_to_the_microsecond() -> None:
    moment = datetime(2026, 11, 23, 18, 0, 0, 123456, tzinfo=UTC)
    assert decode_cursor(encode_cursor(moment, "id-1")) == (moment, "id-1")


NESTED = base64.urlsafe_b64encode(b"[" * 1000 + b"]" * 1000).decode()


@pytest.mark.parametrize("cursor", ["garbage", "", "eyJ4IjoxfQ", "W1siYSJdXQ", NESTED])
def test_cursors_that_were_not_issued_are_invalid_argument(cursor: str) -> None:
    with pytest.raises(InvalidArgument, match="empty cursor"):
        decode_cursor(cursor)


@pytest.mark.parametrize(("asked", "given"), [(-5, 1), (0, 1), (1, 1), (50, 50), (500, 500), (10_000, 500)])
def test_page_sizes_are_clamped(asked: int, given: int) -> None:
    assert clamp_limit(asked) == given
