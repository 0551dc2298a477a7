"""Opaque page cursors shared by the store adapters.

Every listing is newest first and ordered by (created_at, id), both descending; a cursor names
the last item of the previous page, so pages stay stable while new rows arrive (keyset
pagination: no OFFSET, no skipped or repeated rows).
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import UTC, datetime, timedelta

from ragplatform.domain.errors import InvalidArgument
from ragplatform.domain.paging import MAX_PAGE_SIZE

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MICROSECOND = timedelta(microseconds=1)
# A version tag inside the cursor, so a future format change can reject old cursors cleanly.
_CURSOR_VERSION = 1
# Far above any cursor encode_cursor makes (ids are short), far below JSON's nesting limit.
_MAX_CURSOR_CHARS = 400


def clamp_limit(limit: int) -> int:
    """The page size an adapter fetches: at least 1, at most `MAX_PAGE_SIZE`."""
    return max(1, min(limit, MAX_PAGE_SIZE))


def to_microseconds(moment: datetime) -> int:
    """Whole microseconds since the Unix epoch (exact: no float rounding). Naive means UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - EPOCH) // _ONE_MICROSECOND


def from_microseconds(microseconds: int) -> datetime:
    """The aware UTC datetime of `to_microseconds`' result."""
    return EPOCH + timedelta(microseconds=microseconds)


def encode_cursor(created_at: datetime, item_id: str) -> str:
    """A URL-safe token naming the position just after (`created_at`, `item_id`)."""
    payload = json.dumps([_CURSOR_VERSION, to_microseconds(created_at), item_id], separators=(",", ":"))
    return base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """Inverse of `encode_cursor`. Raise `InvalidArgument` for a token this module did not make.
    (Clients' tokens are signed and checked before they get here; the length bound keeps the JSON
    decoder away from deep nesting even for internal callers.)"""
    try:
        if len(cursor) > _MAX_CURSOR_CHARS:
            raise ValueError(cursor)
        padded = cursor + "=" * (-len(cursor) % 4)
        version, microseconds, item_id = json.loads(base64.urlsafe_b64decode(padded.encode()))
        if version != _CURSOR_VERSION or not isinstance(microseconds, int) or not isinstance(item_id, str):
            raise ValueError(cursor)
        return from_microseconds(microseconds), item_id
    except (ValueError, TypeError, binascii.Error, OverflowError):
        raise InvalidArgument(
            "the page cursor is not one this listing returned; start again with an empty cursor"
        ) from None
