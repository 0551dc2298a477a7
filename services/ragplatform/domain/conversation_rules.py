"""What a conversation accepts, independent of where it is stored or who writes it (the
conversation service, and the gateway storing an Ask's exchange itself)."""

from __future__ import annotations

from collections.abc import Sequence

from ragplatform.domain.errors import InvalidArgument
from ragplatform.domain.models import Turn

MAX_TITLE_CHARS = 120
MAX_TURN_CHARS = 100_000
UNTITLED = "Untitled"


def require_tenant(tenant_id: str) -> str:
    if not tenant_id:
        raise InvalidArgument("tenant_id is required")
    return tenant_id


def shorten_title(title: str) -> str:
    """The title with its whitespace collapsed, cut to MAX_TITLE_CHARS (ending in "…" when cut)."""
    title = " ".join(title.split())
    return title if len(title) <= MAX_TITLE_CHARS else title[: MAX_TITLE_CHARS - 1] + "…"


def conversation_title(title: str) -> str:
    """The title a new conversation gets: `title` shortened, or "Untitled" when it is blank."""
    return shorten_title(title) or UNTITLED


def check_turns(turns: Sequence[Turn]) -> None:
    """Refuse an empty list of turns, or a turn longer than MAX_TURN_CHARS."""
    if not turns:
        raise InvalidArgument("turns must not be empty")
    for turn in turns:
        if len(turn.content) > MAX_TURN_CHARS:
            raise InvalidArgument(f"a turn is longer than {MAX_TURN_CHARS} characters; shorten it")
