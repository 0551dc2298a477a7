"""Page tokens as clients see them: the store's cursor, signed (HMAC-SHA256) and bound to the
listing and tenant it came from, so a token cannot be forged, edited or replayed on another
listing. Checking one is a length check, a base64 decode and one HMAC: nothing a client sends is
parsed before its signature holds.

The key comes from a secret every replica shares (the internal token; see `page_token_key`), so
any replica can continue a listing another one started.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from collections.abc import Awaitable, Callable
from typing import TypeVar

from ragplatform.domain.errors import InvalidArgument
from ragplatform.domain.models import Page

T = TypeVar("T")

MAX_TOKEN_CHARS = 512
_TAG_BYTES = 16
_KEY_CONTEXT = b"ragplatform page tokens v1"
BAD_TOKEN = (
    "the page_token is not one this listing returned (edited, from another listing or tenant, or "
    "from before a restart); start again with an empty page_token"
)


def page_token_key(secret: str | None) -> bytes:
    """The signing key derived from a shared secret; without one, a random key for this process
    (tokens then only work on the replica that issued them, until it restarts)."""
    if not secret:
        return secrets.token_bytes(32)
    return hmac.new(secret.encode(), _KEY_CONTEXT, hashlib.sha256).digest()


class PageTokens:
    """Seals store cursors into client tokens and opens them again."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    def _tag(self, scope: str, cursor: bytes) -> bytes:
        return hmac.new(self._key, scope.encode() + b"\x00" + cursor, hashlib.sha256).digest()[:_TAG_BYTES]

    def seal(self, cursor: str, scope: str) -> str:
        """The client token for a store cursor ('' stays '': the last page)."""
        if not cursor:
            return ""
        raw = cursor.encode()
        return base64.urlsafe_b64encode(self._tag(scope, raw) + raw).decode().rstrip("=")

    def open(self, token: str, scope: str) -> str:
        """The store cursor inside a client token ('' for ''); `InvalidArgument` if it is not one
        `seal` made for this scope with this key."""
        if not token:
            return ""
        if len(token) > MAX_TOKEN_CHARS:
            raise InvalidArgument(BAD_TOKEN)
        try:
            data = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        except (binascii.Error, ValueError):
            raise InvalidArgument(BAD_TOKEN) from None
        tag, raw = data[:_TAG_BYTES], data[_TAG_BYTES:]
        if not raw or not hmac.compare_digest(tag, self._tag(scope, raw)):
            raise InvalidArgument(BAD_TOKEN)
        return raw.decode()

    async def page(self, token: str, scope: str, fetch: Callable[[str], Awaitable[Page[T]]]) -> Page[T]:
        """Fetch one page with the cursor inside `token`; the next cursor comes back sealed."""
        page = await fetch(self.open(token, scope))
        return Page(page.items, self.seal(page.next_cursor, scope))
