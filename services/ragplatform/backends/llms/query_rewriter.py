"""Query rewriters: a follow-up question into a standalone search query. The interface and the
lexical adapter (no model); `openai_query_rewriter.py` asks an OpenAI-compatible chat endpoint."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from ragplatform.domain.models import Role, Turn
from ragplatform.domain.query_rewrite import lexical_rewrite

RewriterName = Literal["", "llm", "lexical"]


@dataclass(frozen=True)
class RewrittenQuery:
    #: What to search with.
    query: str
    #: Who wrote `query`: "llm", "lexical", or "" when it is the question unchanged.
    rewriter: RewriterName
    #: Seconds the rewrite took, model included (set by the generation service).
    model_seconds: float = 0.0


class QueryRewriter(Protocol):
    async def rewrite(self, question: str, history: Sequence[Turn]) -> RewrittenQuery:
        """A standalone query for `question`. Never raises for an unreachable model: falls back
        to the lexical rewrite. Without a user turn in `history`, `question` unchanged."""

    async def close(self) -> None: ...


def has_earlier_question(history: Sequence[Turn]) -> bool:
    """True when `history` holds a question to rewrite against."""
    return any(t.role == Role.USER and t.content.strip() for t in history)


def rewrite_lexically(question: str, history: Sequence[Turn]) -> RewrittenQuery:
    """`lexical_rewrite`, labelled: "lexical" when it changed the question, else ""."""
    query = lexical_rewrite(question, history)
    return RewrittenQuery(query, "lexical" if query != " ".join(question.split()) else "")


class LexicalQueryRewriter:
    """`QueryRewriter` without a model: `domain.query_rewrite.lexical_rewrite`."""

    async def rewrite(self, question: str, history: Sequence[Turn]) -> RewrittenQuery:
        return rewrite_lexically(question, history)

    async def close(self) -> None:
        """Nothing to release."""


class UnchangedQuery:
    """`QueryRewriter` that never rewrites (RAG_QUERY_REWRITE=off)."""

    async def rewrite(self, question: str, history: Sequence[Turn]) -> RewrittenQuery:
        return RewrittenQuery(" ".join(question.split()), "")

    async def close(self) -> None:
        """Nothing to release."""
