"""API key secrets: how they are made, hashed for storage and compared.

The store keeps only the hash; the key itself is shown once, when it is created.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

API_KEY_PREFIX = "rag_"
# 32 random bytes = 256 bits of entropy.
_KEY_BYTES = 32


def generate_api_key() -> str:
    """A new secret key, `rag_` followed by 43 URL-safe characters."""
    return API_KEY_PREFIX + secrets.token_urlsafe(_KEY_BYTES)


def hash_api_key(api_key: str) -> str:
    """The hex SHA-256 of the key: what the store keeps and looks keys up by.

    A fast unsalted hash is the right tool here, unlike for passwords: the keys carry 256 random
    bits, so there is no dictionary to try and brute force is hopeless however fast the hash is.
    Slow salted hashes (bcrypt, argon2) would only add milliseconds to every request and make
    lookup-by-hash impossible, since each salt gives a different hash.
    """
    return hashlib.sha256(api_key.encode()).hexdigest()


def api_key_matches(api_key: str, key_hash: str) -> bool:
    """Whether `api_key` hashes to `key_hash`, compared in constant time (no timing side channel)."""
    return hmac.compare_digest(hash_api_key(api_key).encode(), key_hash.encode())


def looks_like_api_key(value: str) -> bool:
    """A cheap format check before any lookup: the prefix and a plausible length."""
    return value.startswith(API_KEY_PREFIX) and 20 <= len(value) <= 200
