"""Answers from any OpenAI-compatible chat endpoint (OpenAI, vLLM, Ollama, llama.cpp, Groq ...).

Reliability, in the order a request meets it:

1. A circuit breaker per model: after consecutive endpoint failures the model is not called for a
   cool-down, so requests fail fast (or go straight to the fallback) instead of each waiting for a
   timeout.
2. Bounded retries with jittered exponential backoff (`tenacity`) for timeouts, connection
   errors, HTTP 429 and 5xx — only until the first token arrives. After that, text has reached
   the caller, and a retry would repeat it; a failure mid-answer is reported, not retried.
3. The fallback model (RAG_LLM_FALLBACK_MODEL), tried when the primary fails before its first
   token for any reason but a refused API key (the fallback would be refused too).

Errors are domain errors (see `ragplatform.backends.openai_errors`): an endpoint that times out
or fails is `Unavailable` (retrying later may work); a refused key or unknown model is
`FailedPrecondition` naming the setting to fix; a rate limit is `ResourceExhausted`.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from tenacity import wait_random_exponential
from tenacity.wait import wait_base

from ragplatform.backends.first_attempt_retries import with_retries
from ragplatform.backends.llms.base import AnswerDelta, AnswerDone, AnswerEvent, AnswerRequest
from ragplatform.backends.llms.chat_chunks import ChatChunk, read_chunks
from ragplatform.backends.llms.circuit_breaker import CircuitBreaker
from ragplatform.backends.openai_errors import (
    CredentialsRefused,
    Endpoint,
    counts_against_endpoint,
    is_transient,
    map_openai_error,
)
from ragplatform.backends.openai_http import HttpConnectionError, OpenAIHttp, StreamedResponse
from ragplatform.core.settings import GenerationSettings
from ragplatform.domain.citations import assemble_citations
from ragplatform.domain.errors import RagError, ResourceExhausted, Unavailable
from ragplatform.domain.models import TokenUsage
from ragplatform.domain.prompts import ChatMessage, build_chat_messages

# The default backoff: 0.25 s, 0.5 s, 1 s ... up to 4 s, randomised so that many streams hit by
# the same outage do not retry in lockstep.
DEFAULT_RETRY_WAIT: wait_base = wait_random_exponential(multiplier=0.25, max=4.0)
BREAKER_FAILURES = 5
BREAKER_COOLDOWN_SECONDS = 30.0
# HTTP connections to the model endpoint, at most (the `openai` client's default): one per answer
# streaming at once.
MAX_CONNECTIONS = 1000


@dataclass
class _Opened:
    """A stream that has produced its first token (or ended without one)."""

    stream: AsyncIterator[ChatChunk]
    response: StreamedResponse
    first_text: str
    finish_reason: str | None
    usage: TokenUsage | None
    ended: bool


class OpenAIAnswerGenerator:
    """`AnswerGenerator` over an OpenAI-compatible chat endpoint. Callers may rely on: deltas, then one
    `AnswerDone` whose `model` is the model that answered (the fallback's name when it was used)
    and whose citations are the passages the text cites as [n] (inferred from its wording when the
    model writes no valid marker; see `domain/citations.py`); `Unavailable`,
    `FailedPrecondition`, `ResourceExhausted` or `InvalidArgument` when no model could answer."""

    def __init__(
        self,
        settings: GenerationSettings,
        *,
        retry_wait: wait_base = DEFAULT_RETRY_WAIT,
        breaker_failures: int = BREAKER_FAILURES,
        breaker_cooldown_seconds: float = BREAKER_COOLDOWN_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._settings = settings
        # Retries are ours: bounded, and never after the first token. Requests go through
        # `OpenAIHttp` rather than the `openai` client: on every answer (see openai_http.py).
        self._http = OpenAIHttp(settings.llm_url, settings.llm_api_key, settings.llm_timeout_seconds, MAX_CONNECTIONS)
        self._endpoint = Endpoint(
            what="the generation model endpoint",
            url=settings.llm_url,
            url_var="RAG_LLM_URL",
            key_var="RAG_LLM_API_KEY",
            model_var="RAG_LLM_MODEL / RAG_LLM_FALLBACK_MODEL",
            timeout=settings.llm_timeout_seconds,
        )
        self._retry_wait = retry_wait
        self._breakers: defaultdict[str, CircuitBreaker] = defaultdict(
            lambda: CircuitBreaker(breaker_failures, breaker_cooldown_seconds, clock)
        )

    @property
    def name(self) -> str:
        return "openai"

    def breaker(self, model: str) -> CircuitBreaker:
        """The circuit breaker guarding `model` (for metrics and tests)."""
        return self._breakers[model]

    async def close(self) -> None:
        await self._http.close()

    async def generate(self, request: AnswerRequest) -> AsyncIterator[AnswerEvent]:
        messages = build_chat_messages(
            request.question, request.passages, request.history, self._settings.max_history_turns
        )
        max_tokens = request.max_tokens or self._settings.llm_max_tokens
        failures: list[tuple[str, RagError]] = []
        for model in self._models(request):
            try:
                opened = await self._open(model, messages, max_tokens)
            except RagError as exc:
                failures.append((model, exc))
                if isinstance(exc, CredentialsRefused):
                    break  # the fallback shares the endpoint and the key
                continue
            async for event in self._relay(model, opened, request):
                yield event
            return
        raise _combined(failures)

    def _models(self, request: AnswerRequest) -> list[str]:
        primary = request.model or self._settings.llm_model
        fallback = self._settings.llm_fallback_model
        return [primary, fallback] if fallback and fallback != primary else [primary]

    async def _open(self, model: str, messages: list[ChatMessage], max_tokens: int) -> _Opened:
        """Start a streamed completion and read up to its first token, retrying transient
        failures. Raises a domain error when the model cannot be used."""
        breaker = self._breakers[model]
        if not breaker.allow():
            raise Unavailable(
                f"the generation model {model!r} failed repeatedly; "
                f"not calling it for another {breaker.retry_after():.0f} s (circuit breaker). Try again later."
            )
        try:
            opened = await with_retries(
                lambda: self._first_token(model, messages, max_tokens),
                attempts=self._settings.llm_max_retries + 1,
                wait=self._retry_wait,
                transient=is_transient,
            )
        except asyncio.CancelledError:
            breaker.release()
            raise
        except Exception as exc:
            if counts_against_endpoint(exc):
                breaker.record_failure()
            else:
                breaker.release()
            raise self._map(exc, model) from exc
        return opened

    async def _first_token(self, model: str, messages: list[ChatMessage], max_tokens: int) -> _Opened:
        # Chunks are read from the event lines, not built as pydantic models (chat_chunks.py).
        body = {
            "model": model,
            "messages": messages,
            "max_tokens": max_tokens,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        response = await self._http.post_stream("/chat/completions", body)
        iterator = read_chunks(response.line_batches())
        finish_reason: str | None = None
        usage: TokenUsage | None = None
        try:
            async for chunk in iterator:
                finish_reason = chunk.finish_reason or finish_reason
                usage = chunk.usage or usage
                if chunk.text:
                    return _Opened(iterator, response, chunk.text, finish_reason, usage, ended=False)
        except BaseException:
            await response.close()  # free the connection before a retry opens another
            raise
        return _Opened(iterator, response, "", finish_reason, usage, ended=True)

    async def _relay(self, model: str, opened: _Opened, request: AnswerRequest) -> AsyncIterator[AnswerEvent]:
        """Stream the rest of the answer; no retries from here on."""
        breaker = self._breakers[model]
        parts = [opened.first_text]
        finish_reason, usage = opened.finish_reason, opened.usage
        try:
            if opened.first_text:
                yield AnswerDelta(opened.first_text)
            if not opened.ended:
                async for chunk in opened.stream:
                    finish_reason = chunk.finish_reason or finish_reason
                    usage = chunk.usage or usage
                    if chunk.text:
                        parts.append(chunk.text)
                        yield AnswerDelta(chunk.text)
        except asyncio.CancelledError:
            breaker.release()
            raise
        except (HttpConnectionError, OSError) as exc:
            if counts_against_endpoint(exc):
                breaker.record_failure()
            mapped = self._map(exc, model)
            raise Unavailable(
                f"the answer stopped part-way: {mapped.message} The partial answer is incomplete; ask again."
            ) from exc
        finally:
            # Also when the caller stops reading early: the HTTP connection goes back to the pool.
            await opened.response.close()
        breaker.record_success()
        answer = "".join(parts)
        if usage is None:
            # Some servers ignore include_usage; count words rather than report nothing.
            prompt = " ".join([request.question, *(p.text for p in request.passages)])
            usage = TokenUsage(prompt_tokens=len(prompt.split()), completion_tokens=len(answer.split()))
        yield AnswerDone(
            citations=assemble_citations(answer, request.passages),
            usage=usage,
            model=model,
            finish_reason=finish_reason or "stop",
        )

    def _map(self, exc: Exception, model: str) -> RagError:
        return map_openai_error(exc, endpoint=self._endpoint, model=model)


def _combined(failures: list[tuple[str, RagError]]) -> RagError:
    """One error for the caller: the primary model's kind, every model's reason."""
    first = failures[0][1]
    if len(failures) == 1:
        return first
    message = " Then ".join(f"model {model!r}: {error.message}" for model, error in failures)
    if isinstance(first, ResourceExhausted):
        return ResourceExhausted(message, first.retry_after_seconds)
    return type(first)(message)
