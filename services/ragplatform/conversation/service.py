"""Conversation rules, independent of gRPC."""

from __future__ import annotations

from ragplatform.backends.store.base import Store
from ragplatform.domain.errors import InvalidArgument
from ragplatform.domain.models import Conversation, Page, Turn
from ragplatform.domain.page_tokens import PageTokens, page_token_key
from ragplatform.domain.paging import clamp_page_size

MAX_TITLE_CHARS = 120
MAX_TURN_CHARS = 100_000


def require_tenant(tenant_id: str) -> str:
    if not tenant_id:
        raise InvalidArgument("tenant_id is required")
    return tenant_id


def shorten_title(title: str) -> str:
    title = " ".join(title.split())
    return title if len(title) <= MAX_TITLE_CHARS else title[: MAX_TITLE_CHARS - 1] + "…"


class ConversationService:
    def __init__(self, store: Store, page_tokens: PageTokens | None = None) -> None:
        self._store = store
        self._tokens = page_tokens or PageTokens(page_token_key(None))

    async def create(self, tenant_id: str, title: str) -> Conversation:
        return await self._store.create_conversation(require_tenant(tenant_id), shorten_title(title) or "Untitled")

    async def append(self, tenant_id: str, conversation_id: str, turns: list[Turn], title: str = "") -> Conversation:
        """Add turns to a conversation; with no `conversation_id`, start one (titled `title`)
        that holds them."""
        if not turns:
            raise InvalidArgument("turns must not be empty")
        for turn in turns:
            if len(turn.content) > MAX_TURN_CHARS:
                raise InvalidArgument(f"a turn is longer than {MAX_TURN_CHARS} characters; shorten it")
        if not conversation_id:
            title = shorten_title(title) or "Untitled"
            return await self._store.start_conversation(require_tenant(tenant_id), title, turns)
        return await self._store.append_turns(require_tenant(tenant_id), conversation_id, turns)

    async def history(self, tenant_id: str, conversation_id: str, max_turns: int) -> tuple[Conversation, list[Turn]]:
        if not conversation_id:
            raise InvalidArgument("conversation_id is required")
        if max_turns < 0:
            raise InvalidArgument("max_turns must be 0 (all) or positive")
        conversation = await self._store.get_conversation(require_tenant(tenant_id), conversation_id)
        turns = await self._store.get_turns(tenant_id, conversation_id, max_turns)
        return conversation, turns

    async def list(self, tenant_id: str, page_size: int, page_token: str) -> Page[Conversation]:
        tenant, size = require_tenant(tenant_id), clamp_page_size(page_size)
        return await self._tokens.page(
            page_token, f"conversations/{tenant}", lambda cursor: self._store.list_conversations(tenant, size, cursor)
        )
