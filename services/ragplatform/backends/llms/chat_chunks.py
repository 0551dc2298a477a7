"""Streamed chat completions read straight from their server-sent events.

The `openai` client turns every streamed chunk into a pydantic model: for a token-by-token answer
that was most of the generation service's CPU. Only three fields matter here (the delta's text,
the finish reason and the usage), so each `data:` line is decoded into a small typed struct by
msgspec instead (a few microseconds, several times less than `json.loads` and the dict lookups);
the client still sends the request, retries nothing itself, and raises its typed errors for an
HTTP error status, so failures are mapped exactly as before (ragplatform.backends.openai_errors).

The events that arrived in one network read are merged into one chunk (`read_chunks`): a model
that streams faster than the answer is passed on (or a process too busy to read each token as it
comes) costs one pass through the streaming pipeline per read rather than per token, and the
first read still goes out at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import msgspec

from ragplatform.domain.errors import Unavailable
from ragplatform.domain.models import TokenUsage

# How long to wait, after `[DONE]`, for the body to end. A body read to its end lets the HTTP
# connection go back to the pool; one closed part-read is dropped, and the next answer pays for
# a new TCP connection (servers end the body right after `[DONE]`, so this is never waited out).
DRAIN_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class ChatChunk:
    text: str
    finish_reason: str | None
    usage: TokenUsage | None


class StreamEnd(Exception):
    """`data: [DONE]`: the server finished the stream."""


class _Delta(msgspec.Struct):
    content: str | None = None


class _Choice(msgspec.Struct):
    delta: _Delta | None = None
    finish_reason: str | None = None


class _Usage(msgspec.Struct):
    prompt_tokens: int = 0
    completion_tokens: int = 0


class _Event(msgspec.Struct):
    """The fields of a chunk event that matter here (the others are skipped unread)."""

    choices: list[_Choice] | None = None
    usage: _Usage | None = None
    error: dict[str, Any] | str | None = None


_EVENT = msgspec.json.Decoder(_Event)


def read_event_line(line: str) -> ChatChunk | None:
    """The chunk in one SSE line, None for lines that carry none (blank lines, comments, other
    fields). Raises `StreamEnd` at `[DONE]`, and `Unavailable` for an error event or one that is
    not a chat-completion chunk."""
    if not line.startswith("data:"):
        return None
    data = line[5:].strip()
    if data == "[DONE]":
        raise StreamEnd
    if not data:
        return None
    try:
        event = _EVENT.decode(data)
    except msgspec.DecodeError as exc:
        raise Unavailable(
            f"the model endpoint sent an event that is not a chat-completion chunk ({exc}); is RAG_LLM_URL an "
            "OpenAI-compatible server?"
        ) from exc
    if event.error is not None:
        error = event.error
        message = error.get("message", error) if isinstance(error, dict) else error
        raise Unavailable(f"the model endpoint reported an error part-way through the answer: {message}")
    usage = TokenUsage(event.usage.prompt_tokens, event.usage.completion_tokens) if event.usage else None
    if not event.choices:
        return ChatChunk("", None, usage)
    choice = event.choices[0]
    text = choice.delta.content if choice.delta is not None else None
    return ChatChunk(text or "", choice.finish_reason, usage)


def merge_chunks(chunks: list[ChatChunk]) -> ChatChunk:
    """Chunks read together as one: their texts in order, the last finish reason and usage sent."""
    if len(chunks) == 1:
        return chunks[0]
    finish_reason: str | None = None
    usage: TokenUsage | None = None
    for chunk in chunks:
        finish_reason = chunk.finish_reason or finish_reason
        usage = chunk.usage or usage
    return ChatChunk("".join(chunk.text for chunk in chunks), finish_reason, usage)


async def read_chunks(
    line_batches: AsyncIterator[list[str]], drain_seconds: float = DRAIN_SECONDS
) -> AsyncIterator[ChatChunk]:
    """The chunks of a streamed chat completion, those whose lines came in one batch (one network
    read) merged into one, until `[DONE]` or the end of the body; after `[DONE]`, the rest of the
    body is read (for up to `drain_seconds`) and ignored. A chunk before an error or `[DONE]` in
    the same batch is still yielded first."""
    ended = False
    async for lines in line_batches:
        chunks: list[ChatChunk] = []
        try:
            for line in lines:
                chunk = read_event_line(line)
                if chunk is not None:
                    chunks.append(chunk)
        except StreamEnd:
            ended = True
        except Unavailable:
            if chunks:
                yield merge_chunks(chunks)
            raise
        if chunks:
            yield merge_chunks(chunks)
        if ended:
            await _drain(line_batches, drain_seconds)
            return


async def _drain(line_batches: AsyncIterator[list[str]], seconds: float) -> None:
    """Read what follows `[DONE]` so the connection can be reused. The answer is complete by
    now: a failure or a body that does not end only costs the connection (it is closed)."""
    try:
        async with asyncio.timeout(seconds):
            async for _ in line_batches:
                pass
    except Exception:  # the answer is complete (see the docstring); the caller closes the response
        return
