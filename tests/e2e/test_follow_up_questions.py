"""Follow-up questions in a conversation, on the platform as separate processes (embedded
backends, extractive answers, so the lexical rewrite): "and how do I undo that?" retrieves what
its standalone rewrite retrieves, and the caller sees the query that was searched."""

from __future__ import annotations

import asyncio

import pytest

from ragplatform.v1 import gateway_pb2
from tests.e2e.conftest import FIXTURES, RunningPlatform, wait_for_jobs

pytestmark = pytest.mark.e2e

CONVERSATION_DOCS = FIXTURES / "conversation"
FIRST = "How do I enable maintenance mode on the Harbor gate controller?"
FOLLOW_UP = "and how do I undo that?"
STANDALONE = "How do I leave maintenance mode on the Harbor gate controller?"
LEAVING = "To leave maintenance mode"
THIRD = "What if the lamp keeps blinking after that?"
THIRD_STANDALONE = "What if the amber lamp keeps blinking after leaving maintenance mode on the Harbor gate controller?"


@pytest.fixture(scope="module")
def conversation_docs(platform: RunningPlatform) -> RunningPlatform:
    """The guide and an editor manual that also talks about undoing, for tenant B."""

    async def ingest() -> None:
        async with platform.client(platform.key_b) as client:
            jobs = [(await client.ingest_file(path)).job.job_id for path in sorted(CONVERSATION_DOCS.iterdir())]
            await wait_for_jobs(client, jobs)

    asyncio.run(ingest())
    return platform


async def ask(platform: RunningPlatform, question: str, conversation_id: str = "") -> list[gateway_pb2.AskResponse]:
    async with platform.client(platform.key_b) as client:
        return [m async for m in client.ask(question, conversation_id=conversation_id)]


def top_passage(messages: list[gateway_pb2.AskResponse]) -> tuple[str, str]:
    passage = messages[0].sources.passages[0]
    return passage.filename, passage.chunk_id


async def test_a_follow_up_retrieves_what_its_standalone_rewrite_retrieves(conversation_docs: RunningPlatform) -> None:
    first = await ask(conversation_docs, FIRST)
    first_done = first[-1].done
    # The first question of a conversation is searched as asked.
    assert (first_done.search_query, first_done.query_rewriter) == (FIRST, "")

    follow_up = await ask(conversation_docs, FOLLOW_UP, first_done.conversation_id)
    standalone = await ask(conversation_docs, STANDALONE)

    follow_up_done = follow_up[-1].done
    assert follow_up_done.conversation_id == first_done.conversation_id
    assert follow_up_done.query_rewriter == "lexical"
    assert follow_up_done.search_query.startswith(FOLLOW_UP)
    assert "maintenance" in follow_up_done.search_query
    assert top_passage(follow_up) == top_passage(standalone)
    assert top_passage(follow_up)[0] == "harbor-gate-controller-guide.md"
    assert LEAVING in follow_up[0].sources.passages[0].text
    assert any(c.filename == "harbor-gate-controller-guide.md" for c in follow_up_done.citations)


async def test_a_chain_of_follow_ups_keeps_its_subject(conversation_docs: RunningPlatform) -> None:
    conversation_id = (await ask(conversation_docs, FIRST))[-1].done.conversation_id
    await ask(conversation_docs, FOLLOW_UP, conversation_id)
    third = await ask(conversation_docs, THIRD, conversation_id)
    standalone = await ask(conversation_docs, THIRD_STANDALONE)
    done = third[-1].done
    assert done.query_rewriter == "lexical"
    # The second question named no subject, so the rewrite reaches back to the first one.
    assert "Harbor" in done.search_query
    assert top_passage(third) == top_passage(standalone)


async def test_without_the_conversation_the_same_words_find_the_wrong_document(
    conversation_docs: RunningPlatform,
) -> None:
    # What the follow-up would have retrieved had it been searched as asked (so the test above
    # shows the rewrite at work, not a question that needed none).
    async with conversation_docs.client(conversation_docs.key_b) as client:
        reply = await client.search(FOLLOW_UP, 1)
    assert reply.passages[0].filename == "quillpad-editor-shortcuts.md"
    # Asked alone, it is searched as asked: the follow-up's answer was not cached for others.
    alone = await ask(conversation_docs, FOLLOW_UP)
    assert (alone[-1].done.search_query, alone[-1].done.query_rewriter) == (FOLLOW_UP, "")
    assert alone[-1].done.cached is False
    assert alone[0].sources.passages[0].filename == "quillpad-editor-shortcuts.md"
