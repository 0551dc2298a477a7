"""Conversation rules, independent of gRPC."""

from __future__ import annotations

from ragplatform.backends.store.base import Store
from ragplatform.backends.store.conversation_writes import append_to_conversation
from ragplatform.domain.conversation_rules import conversation_title, require_tenant
from ragplatform.domain.errors import InvalidArgument
from ragplatform.domain.models import Conversation, Page, Turn
from ragplatform.domain.page_tokens import PageTokens, page_token_key
from ragplatform.domain.paging import clamp_page_size


class ConversationService:
    def __init__(self, store: Store, page_tokens: PageTokens | None = None) -> None:
        self._store = store
        self._tokens = page_tokens or PageTokens(page_token_key(None))

    async def create(self, tenant_id: str, title: str) -> Conversation:
        return await self._store.create_conversation(require_tenant(tenant_id), conversation_title(title))

    async def append(self, tenant_id: str, conversation_id: str, turns: list[Turn], title: str = "") -> Conversation:
        """Add turns to a conversation; with no `conversation_id`, start one (titled `title`)
        that holds them (see `append_to_conversation`)."""
        return await append_to_conversation(self._store, tenant_id, conversation_id, turns, title)

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
