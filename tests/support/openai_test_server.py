"""TEST DOUBLE: a stand-in for a remote OpenAI-compatible endpoint (OpenAI, vLLM, Ollama, ...).

It is not a language model. It speaks the wire protocol the `openai` client uses, so our
adapters are exercised over real HTTP, with real streaming, timeouts and error statuses:

* `POST /v1/chat/completions` — streaming (server-sent events, with the usage chunk when
  `stream_options.include_usage` is set) and non-streaming. It answers by quoting the numbered
  passage (`[n] filename: text`, as `ragplatform.domain.prompts` writes them) whose words best
  match the question, with an `[n]` citation; with no passages it gives the prompt's "no answer"
  sentence. Asked to rewrite a follow-up (`domain.query_rewrite`'s prompt), it answers, as chatty
  models do, `Query: "<last question> (<the conversation's first question>)"` and a remark.
* `POST /v1/embeddings` — deterministic unit vectors by feature hashing of the words (the same
  vectors as the `hashing` embedder: similar texts get similar vectors), of a configurable
  dimension (or the request's `dimensions`), as floats or base64 like the real API.
* `GET /v1/models`, `GET /health`.

Behaviour is chosen per model name, so one server serves every test:

| model                  | behaviour                                                           |
|------------------------|---------------------------------------------------------------------|
| `slow-model`           | waits `slow_seconds` (default 1 hour) before answering: a timeout    |
| `broken-model`         | HTTP 500                                                            |
| `overloaded-model`     | HTTP 429 with `Retry-After: 1`                                      |
| `missing-model`        | HTTP 404 (model does not exist)                                     |
| `flaky-model`          | HTTP 503 for the first `flaky_failures` requests, then answers      |
| `midstream-fail-model` | streams two deltas, then drops the connection                       |
| `no-usage-model`       | streams without the usage chunk (ignores `stream_options`)          |
| anything else          | answers normally                                                    |

Every request waits `latency` seconds first (the model's "thinking" time; a request may set its
own with the header `x-test-latency`), and streamed deltas are `token_delay` apart. With
`api_key` set, requests without `Authorization: Bearer <api_key>` get HTTP 401. `GET /test/stats`
returns how late each streamed answer's first token left beyond that wait (the double's own
delay, which a benchmark must not count as the platform's).

In tests: the `openai_server` fixture (an in-process server on a free loopback port). As its own
process (for end-to-end tests and benchmarks)::

    python -m tests.support.openai_test_server --port 8089 --latency 2.0

prints `ready http://127.0.0.1:8089/v1` once it accepts connections and stops on SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import re
import resource
import signal
import struct
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web

from ragplatform.backends.embedders.hashing import hash_embed
from ragplatform.core.event_loop import run as run_loop
from ragplatform.domain.prompts import NO_ANSWER
from ragplatform.domain.query_rewrite import REWRITE_SYSTEM_PROMPT
from ragplatform.domain.text_matching import content_words, overlap_score, split_sentences

_PASSAGE = re.compile(r"^\[(\d+)\] ([^:\n]+): (.*)$")
_WORD_PIECES = re.compile(r"\S+\s*")


@dataclass
class RecordedRequest:
    """What a test may check about a request the server received."""

    path: str
    model: str
    stream: bool = False
    authorization: str = ""
    body: dict[str, Any] = field(default_factory=dict)
    client_port: int = 0  # the client's side of the TCP connection: equal ports, reused connection


@dataclass
class OpenAITestServer:
    """The test double; settings may be changed while it runs (they are read per request)."""

    host: str = "127.0.0.1"
    port: int = 0
    latency: float = 0.0
    token_delay: float = 0.0
    dimension: int = 384
    api_key: str | None = None
    slow_seconds: float = 3600.0
    flaky_failures: int = 1
    requests: list[RecordedRequest] = field(default_factory=list)
    # Per streamed answer: how late its first token left, in seconds, beyond the latency it was set
    # to wait (measured from the handler's start: the double's own delay, e.g. on a busy harness
    # CPU). `GET /test/stats` returns them, so a benchmark can tell the double's tail from the
    # platform's.
    first_token_lateness: list[float] = field(default_factory=list)
    _runner: web.AppRunner | None = None
    _served: Counter[str] = field(default_factory=Counter)

    @property
    def base_url(self) -> str:
        """The URL to give the `openai` client (`.../v1`)."""
        return f"http://{self.host}:{self.port}/v1"

    def requests_for(self, model: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.model == model]

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/v1/embeddings", self._embeddings)
        app.router.add_get("/v1/models", self._models)
        app.router.add_get("/health", self._health)
        app.router.add_get("/test/stats", self._stats)
        # handler_cancellation: a client that gives up (timeout) cancels its slow handler, so
        # stopping the server never waits for an hour-long sleep.
        runner = web.AppRunner(app, access_log=None, handler_cancellation=True, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port, backlog=8192)
        await site.start()
        if self.port == 0:
            self.port = int(runner.addresses[0][1])
        self._runner = runner

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> OpenAITestServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # --- handlers -------------------------------------------------------------------------------

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        started = time.perf_counter()
        body = await _json_body(request)
        model = str(body.get("model", ""))
        stream = bool(body.get("stream", False))
        self.requests.append(
            RecordedRequest(
                request.path, model, stream, request.headers.get("Authorization", ""), body, _client_port(request)
            )
        )
        refused = await self._refuse_or_wait(request, model)
        if refused is not None:
            return refused
        messages = body.get("messages") or []
        answer = compose_answer(messages)
        prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in messages)
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": len(answer.split()),
            "total_tokens": prompt_tokens + len(answer.split()),
        }
        completion_id = f"chatcmpl-{uuid.uuid4().hex[:12]}"
        if not stream:
            return web.json_response(
                {
                    "id": completion_id,
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": model,
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": answer},
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": usage,
                }
            )
        # Some servers ignore stream_options; "no-usage-model" behaves like them.
        include_usage = bool((body.get("stream_options") or {}).get("include_usage")) and model != "no-usage-model"
        due = started + self._latency_for(request, model)
        return await self._stream_chat(request, completion_id, model, answer, usage if include_usage else None, due)

    async def _stream_chat(
        self,
        request: web.Request,
        completion_id: str,
        model: str,
        answer: str,
        usage: dict[str, int] | None,
        due: float,
    ) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await response.prepare(request)

        def chunk(delta: dict[str, str], finish: str | None) -> bytes:
            payload = {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": int(time.time()),
                "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            }
            return f"data: {json.dumps(payload)}\n\n".encode()

        try:
            await response.write(chunk({"role": "assistant", "content": ""}, None))
            for number, piece in enumerate(_WORD_PIECES.findall(answer)):
                if model == "midstream-fail-model" and number == 2:
                    # Drop the connection mid-answer, as a crashing or restarted server would.
                    transport = request.transport
                    if transport is not None:
                        transport.abort()
                    return response
                if self.token_delay:
                    await asyncio.sleep(self.token_delay)
                await response.write(chunk({"content": piece}, None))
                if number == 0:
                    self.first_token_lateness.append(time.perf_counter() - due)
            await response.write(chunk({}, "stop"))
            if usage is not None:
                payload = {
                    "id": completion_id,
                    "object": "chat.completion.chunk",
                    "created": int(time.time()),
                    "model": model,
                    "choices": [],
                    "usage": usage,
                }
                await response.write(f"data: {json.dumps(payload)}\n\n".encode())
            await response.write(b"data: [DONE]\n\n")
            await response.write_eof()
        except ConnectionResetError:
            pass  # the client went away mid-answer (a bench stopping with asks in flight)
        return response

    async def _embeddings(self, request: web.Request) -> web.Response:
        body = await _json_body(request)
        model = str(body.get("model", ""))
        self.requests.append(
            RecordedRequest(
                request.path, model, False, request.headers.get("Authorization", ""), body, _client_port(request)
            )
        )
        refused = await self._refuse_or_wait(request, model)
        if refused is not None:
            return refused
        raw = body.get("input")
        texts = [raw] if isinstance(raw, str) else raw
        if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
            return _error(400, "input must be a string or a list of strings", "invalid_request_error")
        dimension = int(body.get("dimensions") or self.dimension)
        as_base64 = body.get("encoding_format") == "base64"
        data = []
        for index, text in enumerate(texts):
            vector = hashed_vector(text, dimension)
            embedding: object = (
                base64.b64encode(struct.pack(f"<{dimension}f", *vector)).decode() if as_base64 else vector
            )
            data.append({"object": "embedding", "index": index, "embedding": embedding})
        tokens = sum(len(t.split()) for t in texts)
        return web.json_response(
            {
                "object": "list",
                "data": data,
                "model": model,
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            }
        )

    async def _models(self, request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": "test-model", "object": "model"}]})

    async def _stats(self, request: web.Request) -> web.Response:
        return web.json_response({"first_token_lateness_seconds": self.first_token_lateness})

    async def _health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    def _latency_for(self, request: web.Request, model: str) -> float:
        if model == "slow-model":
            return self.slow_seconds
        return float(request.headers.get("x-test-latency", self.latency))

    async def _refuse_or_wait(self, request: web.Request, model: str) -> web.Response | None:
        """The configured failure for `model`, or None after waiting the request's latency."""
        if self.api_key is not None and request.headers.get("Authorization") != f"Bearer {self.api_key}":
            return _error(401, "Incorrect API key provided.", "invalid_request_error", "invalid_api_key")
        self._served[model] += 1
        if model == "broken-model":
            return _error(500, "The server had an error while processing your request.", "server_error")
        if model == "overloaded-model":
            response = _error(429, "Rate limit reached for requests.", "requests", "rate_limit_exceeded")
            response.headers["Retry-After"] = "1"
            return response
        if model == "missing-model":
            return _error(404, f"The model `{model}` does not exist.", "invalid_request_error", "model_not_found")
        if model == "flaky-model" and self._served[model] <= self.flaky_failures:
            return _error(503, "The engine is currently overloaded, please try again later.", "server_error")
        latency = self._latency_for(request, model)
        if latency > 0:
            await asyncio.sleep(latency)
        return None


def compose_answer(messages: list[dict[str, Any]]) -> str:
    """Quote the best-matching numbered passage of the last user message, with its [n]; or, for
    a query rewrite, the last question with the conversation's first question in brackets."""
    user_messages = [m for m in messages if m.get("role") == "user"]
    content = str(user_messages[-1].get("content", "")) if user_messages else ""
    if messages and messages[0].get("content") == REWRITE_SYSTEM_PROMPT:
        last = content.rsplit("Last question:", 1)[-1].split("\n", 1)[0].strip()
        first = next((line[len("User: ") :] for line in content.splitlines() if line.startswith("User: ")), "")
        return f'Query: "{last} ({first})"\nThis query names what the question refers to.'
    question = content.rsplit("Question:", 1)[-1].strip() if "Question:" in content else content
    passages = [m.groups() for m in map(_PASSAGE.match, content.split("\n\n")) if m is not None]
    if not passages:
        return NO_ANSWER
    question_words = content_words(question)
    best_score, best_number, best_sentence, best_file = -1.0, "", "", ""
    for number, filename, text in passages:
        for sentence in split_sentences(text) or [text]:
            score = overlap_score(question_words, sentence)
            if score > best_score:
                best_score, best_number, best_sentence, best_file = score, number, sentence, filename
    if best_score <= 0:
        return NO_ANSWER
    return f"According to {best_file.strip()}: {best_sentence.rstrip('.')} [{best_number}]."


def hashed_vector(text: str, dimension: int) -> list[float]:
    """A deterministic unit vector: the same as the `hashing` embedder's for this dimension, so
    that retrieval through this double behaves like the embedded default."""
    return hash_embed(text, dimension)


def _client_port(request: web.Request) -> int:
    peer = request.transport.get_extra_info("peername") if request.transport else None
    return int(peer[1]) if peer else 0


async def _json_body(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise web.HTTPBadRequest(text="request body is not JSON") from None
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(text="request body must be a JSON object")
    return body


def _error(status: int, message: str, kind: str, code: str | None = None) -> web.Response:
    return web.json_response({"error": {"message": message, "type": kind, "param": None, "code": code}}, status=status)


@pytest.fixture
async def openai_server() -> AsyncIterator[OpenAITestServer]:
    """An OpenAI-compatible TEST DOUBLE on a free loopback port, no latency; tests may change
    its settings (`latency`, `api_key`, `dimension`, ...) while it runs."""
    async with OpenAITestServer() as server:
        yield server


def _raise_open_file_limit() -> None:
    """Benchmarks hold thousands of concurrent streams; each is an open socket."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and (hard == resource.RLIM_INFINITY or soft < hard):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def main(argv: list[str] | None = None) -> None:
    """Run the test double as its own process until SIGTERM or SIGINT."""
    parser = argparse.ArgumentParser(description="OpenAI-compatible TEST DOUBLE (not a language model).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port (printed)")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds before each response")
    parser.add_argument("--token-delay", type=float, default=0.0, help="seconds between streamed deltas")
    parser.add_argument("--dimension", type=int, default=384, help="embedding size")
    parser.add_argument("--api-key", default=None, help="require this bearer token")
    args = parser.parse_args(argv)
    _raise_open_file_limit()
    server = OpenAITestServer(
        host=args.host,
        port=args.port,
        latency=args.latency,
        token_delay=args.token_delay,
        dimension=args.dimension,
        api_key=args.api_key,
    )

    async def serve() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        async with server:
            print(f"ready {server.base_url}", flush=True)
            await stop.wait()

    # uvloop, as the services run: as a benchmark's stand-in it should cost its harness little CPU.
    run_loop(serve(), "uvloop")


if __name__ == "__main__":
    main()
