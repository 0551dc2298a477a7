"""Answer generators. Adapters: `extractive.py` (embedded default: quotes the best passages,
says that it is extractive) and `openai_compatible.py` (any OpenAI-compatible chat endpoint)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Protocol

from ragplatform.domain.models import Citation, ScoredPassage, TokenUsage, Turn


@dataclass(frozen=True)
class AnswerDelta:
    text: str


@dataclass(frozen=True)
class AnswerDone:
    citations: list[Citation]
    usage: TokenUsage
    model: str
    finish_reason: str
    extractive: bool = False
    # From the request to the last token, as the generation service measured it (0 until it does).
    model_seconds: float = 0.0


AnswerEvent = AnswerDelta | AnswerDone


@dataclass(frozen=True)
class AnswerRequest:
    tenant_id: str
    question: str
    passages: list[ScoredPassage]
    history: list[Turn] = field(default_factory=list)
    model: str = ""
    max_tokens: int = 0


class AnswerGenerator(Protocol):
    @property
    def name(self) -> str: ...

    def generate(self, request: AnswerRequest) -> AsyncIterator[AnswerEvent]:
        """Deltas, then exactly one AnswerDone. Raise `Unavailable` / `DeadlineExceeded`."""

    async def close(self) -> None: ...
