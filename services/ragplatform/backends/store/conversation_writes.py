"""Adding turns to a conversation, with the conversation rules: the one way to do it, shared by
the conversation service (its AppendTurns) and the gateway, which stores an Ask's exchange
through its own store instead of calling the conversation service (one gRPC hop less per answer;
see docs/performance.md)."""

from __future__ import annotations

from ragplatform.backends.store.base import Store
from ragplatform.domain.conversation_rules import check_turns, conversation_title, require_tenant
from ragplatform.domain.models import Conversation, Turn


async def append_to_conversation(
    store: Store, tenant_id: str, conversation_id: str, turns: list[Turn], title: str = ""
) -> Conversation:
    """Add `turns` to the tenant's conversation; with no `conversation_id`, start one (titled
    `title`, shortened; "Untitled" when blank) that holds them. One SQL statement either way.
    InvalidArgument for no turns, an over-long turn or no tenant; NotFound for a conversation the
    tenant does not have."""
    check_turns(turns)
    tenant = require_tenant(tenant_id)
    if not conversation_id:
        return await store.start_conversation(tenant, conversation_title(title), turns)
    return await store.append_turns(tenant, conversation_id, turns)
