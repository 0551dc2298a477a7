"""The chat prompt for OpenAI-compatible models: answer only from the numbered passages and cite
them as [n]. Pure; the adapter sends the messages as they are."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, TypedDict

from ragplatform.domain.citations import NO_ANSWER, build_context
from ragplatform.domain.models import Role, ScoredPassage, Turn

__all__ = [
    "DEFAULT_HISTORY_TURNS",
    "NO_ANSWER",
    "SYSTEM_PROMPT",
    "ChatMessage",
    "build_chat_messages",
    "build_user_prompt",
]

#: Conversation turns in a prompt unless RAG_MAX_HISTORY_TURNS says otherwise.
DEFAULT_HISTORY_TURNS = 6

SYSTEM_PROMPT = (
    "You are a careful assistant that answers questions about a collection of documents.\n"
    "Rules:\n"
    "1. Use only the numbered passages in the user's message. Do not use outside knowledge.\n"
    "2. After each statement, cite the passage(s) it comes from as [n], for example [1] or [2][3].\n"
    "   Cite only numbers that appear in the passages.\n"
    f'3. If the passages do not contain the answer, reply exactly: "{NO_ANSWER}"\n'
    "4. Be concise. Quote numbers, names and units exactly as the passages give them."
)


class ChatMessage(TypedDict):
    role: Literal["system", "user", "assistant"]
    content: str


def build_user_prompt(question: str, passages: Sequence[ScoredPassage]) -> str:
    """The final user message: the numbered passages, then the question."""
    context = build_context(passages) if passages else "(no passages were found)"
    return f"Passages:\n\n{context}\n\nQuestion: {question.strip()}"


def build_chat_messages(
    question: str,
    passages: Sequence[ScoredPassage],
    history: Sequence[Turn] = (),
    max_history_turns: int = DEFAULT_HISTORY_TURNS,
) -> list[ChatMessage]:
    """System prompt, the last `max_history_turns` turns of the conversation (so follow-up
    questions make sense), then the passages and the question."""
    messages: list[ChatMessage] = [{"role": "system", "content": SYSTEM_PROMPT}]
    recent = list(history)[-max_history_turns:] if max_history_turns > 0 else []
    for turn in recent:
        role: Literal["user", "assistant"] = "user" if turn.role == Role.USER else "assistant"
        messages.append({"role": role, "content": turn.content})
    messages.append({"role": "user", "content": build_user_prompt(question, passages)})
    return messages
