"""Streamed chat completions read straight from their server-sent events.

The `openai` client turns every streamed chunk into a pydantic model: for a token-by-token answer
that was most of the generation service's CPU. Only three fields matter here (the delta's text,
the finish reason and the usage), so each `data:` line is read with `json.loads` instead; the
client still sends the request, retries nothing itself, and raises its typed errors for an HTTP
error status, so failures are mapped exactly as before (ragplatform.backends.openai_errors).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

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


def read_event_line(line: str) -> ChatChunk | None:
    """The chunk in one SSE line, None for lines that carry none (blank lines, comments, other
    fields). Raises `StreamEnd` at `[DONE]`, and `Unavailable` for an error event."""
    if not line.startswith("data:"):
        return None
    data = line[5:].strip()
    if data == "[DONE]":
        raise StreamEnd
    if not data:
        return None
    payload: dict[str, Any] = json.loads(data)
    if "error" in payload:
        error = payload["error"]
        message = error.get("message", error) if isinstance(error, dict) else error
        raise Unavailable(f"the model endpoint reported an error part-way through the answer: {message}")
    raw_usage = payload.get("usage")
    usage = TokenUsage(raw_usage["prompt_tokens"], raw_usage["completion_tokens"]) if raw_usage else None
    choices = payload.get("choices")
    if not choices:
        return ChatChunk("", None, usage)
    choice = choices[0]
    delta = choice.get("delta") or {}
    return ChatChunk(delta.get("content") or "", choice.get("finish_reason"), usage)


async def read_chunks(lines: AsyncIterator[str], drain_seconds: float = DRAIN_SECONDS) -> AsyncIterator[ChatChunk]:
    """The chunks of a streamed chat completion, until `[DONE]` or the end of the body; after
    `[DONE]`, the rest of the body is read (for up to `drain_seconds`) and ignored."""
    try:
        async for line in lines:
            chunk = read_event_line(line)
            if chunk is not None:
                yield chunk
    except StreamEnd:
        await _drain(lines, drain_seconds)


async def _drain(lines: AsyncIterator[str], seconds: float) -> None:
    """Read what follows `[DONE]` so the connection can be reused. The answer is complete by
    now: a failure or a body that does not end only costs the connection (it is closed)."""
    try:
        async with asyncio.timeout(seconds):
            async for _ in lines:
                pass
    except Exception:  # the answer is complete (see the docstring); the caller closes the response
        return
