"""A plain JSON POST to an OpenAI-compatible endpoint over aiohttp, for the requests on the hot
path: a query's embedding on every Search (`post`), and the streamed chat completion of every
answer (`post_stream`).

Why not the `openai` client there: measured on this machine against the OpenAI-compatible test
double (bench/embedder_transport.py), one single-text embedding request costs ~2.3 ms of CPU
through `openai` (its request options, retries wrapper, auth hooks and httpx2 underneath), ~1.4 ms
through httpx2 alone and ~0.3 ms through aiohttp: on a Search that is most of the service's CPU.
The request is one fixed JSON body and the answer one JSON document, so nothing of the client's
typing is lost. Failures are raised as the exceptions below, which `openai_errors` maps exactly
as it maps the `openai` client's (same messages, same retry rules); with tracing on each request
gets a CLIENT span and sends `traceparent`, as the instrumented httpx requests do.

A streamed answer cost ~3.2 ms of CPU through the `openai` client at 100 answers streaming at
once (its request building; httpx2's pool re-examining every pooled connection, probing idle
sockets, at each request's start and end; four generator layers per line of the body); the
whole generator over `post_stream`, citations included, costs ~1.1 ms (bench/chat_stream_cpu.py).
"""

from __future__ import annotations

import json
import os
import urllib.request
from collections.abc import AsyncIterator, Mapping
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from pydantic import SecretStr
from yarl import URL

from ragplatform.core.tracing_state import http_client_span

OPENAI_URL = "https://api.openai.com/v1"


class HttpConnectionError(Exception):
    """The endpoint could not be reached, or dropped the connection before answering."""


class HttpTimeoutError(HttpConnectionError):
    """The endpoint did not answer within the timeout."""


class HttpStatusError(Exception):
    """The endpoint answered with an HTTP error status (`headers`: the response's, looked up
    case-insensitively)."""

    def __init__(self, status: int, body: bytes, headers: Mapping[str, str]) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status
        self.body = body
        self.headers = headers

    def error_body(self) -> Any:
        """The JSON error object the endpoint sent (OpenAI's `{"error": {...}}` unwrapped); None
        when the body is not JSON."""
        try:
            body = json.loads(self.body)
        except ValueError:
            return None
        return body.get("error", body) if isinstance(body, dict) else body


def env_proxy(url: str) -> str | None:
    """The proxy `HTTP_PROXY` / `HTTPS_PROXY` name for `url`, unless `NO_PROXY` exempts its host
    (as httpx does). Looked up once: aiohttp's own `trust_env` asks on every request, in a thread."""
    parts = urlsplit(url)
    if urllib.request.proxy_bypass(parts.hostname or ""):
        return None
    return urllib.request.getproxies().get(parts.scheme)


class OpenAIHttp:
    """POSTs JSON to `url` (empty: `OPENAI_BASE_URL` or api.openai.com, as the `openai` client
    does), with the bearer key — or HTTP basic auth when the URL carries `user:password@`, as
    httpx sends it —, a total timeout per request and at most `max_connections` open
    connections. The aiohttp session is made on first use (it belongs to the running loop)."""

    def __init__(self, url: str, api_key: SecretStr | None, timeout_seconds: float, max_connections: int) -> None:
        base = URL((url or os.environ.get("OPENAI_BASE_URL") or OPENAI_URL).rstrip("/"))
        basic = aiohttp.BasicAuth.from_url(base)
        self._base = str(base.with_user(None))
        key = (api_key.get_secret_value() if api_key else "") or "no-key-configured"
        authorization = basic.encode() if basic is not None else f"Bearer {key}"
        self._headers = {"Authorization": authorization, "Content-Type": "application/json"}
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self._stream_timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=timeout_seconds, sock_read=timeout_seconds
        )
        self._max_connections = max_connections
        self._proxy = env_proxy(self._base)
        self._session: aiohttp.ClientSession | None = None

    def _opened(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._max_connections),
                timeout=self._timeout,
            )
        return self._session

    async def post(self, path: str, body: Mapping[str, Any]) -> bytes:
        """The response body of a successful POST; `HttpStatusError`, `HttpTimeoutError` or
        `HttpConnectionError` otherwise."""
        url = self._base + path
        headers = dict(self._headers)
        with http_client_span("POST", url, headers) as span:
            try:
                async with self._opened().post(
                    url, data=json.dumps(body).encode(), headers=headers, proxy=self._proxy
                ) as response:
                    content = await response.read()
                    status = response.status
                    if span is not None:
                        span.set_attribute("http.response.status_code", status)
                    if status >= 400:
                        raise HttpStatusError(status, content, response.headers.copy())
                    return content
            except TimeoutError as exc:
                raise HttpTimeoutError(f"no answer within {self._timeout.total:g} s") from exc
            except aiohttp.ClientError as exc:
                raise HttpConnectionError(f"{type(exc).__name__}: {exc}") from exc

    async def post_stream(self, path: str, body: Mapping[str, Any]) -> StreamedResponse:
        """POST and return once the endpoint answered with a success status, its body unread (read
        its `line_batches()`, then `close()` it). Unlike `post`, the timeout bounds each wait for data
        (connecting, the status, every read), not the whole answer. `HttpStatusError`,
        `HttpTimeoutError` or `HttpConnectionError` otherwise. With tracing on, the request's span
        ends when the status arrives (as httpx's instrumentation does for a streamed response)."""
        url = self._base + path
        headers = dict(self._headers)
        with http_client_span("POST", url, headers) as span:
            try:
                response = await self._opened().post(
                    url,
                    data=json.dumps(body).encode(),
                    headers=headers,
                    proxy=self._proxy,
                    timeout=self._stream_timeout,
                )
            except TimeoutError as exc:
                raise HttpTimeoutError(f"no answer within {self._stream_timeout.sock_read:g} s") from exc
            except aiohttp.ClientError as exc:
                raise HttpConnectionError(f"{type(exc).__name__}: {exc}") from exc
            if span is not None:
                span.set_attribute("http.response.status_code", response.status)
            if response.status >= 400:
                try:
                    content = await response.read()
                except (TimeoutError, aiohttp.ClientError):
                    content = b""
                finally:
                    response.release()
                raise HttpStatusError(response.status, content, response.headers.copy())
        return StreamedResponse(response, self._stream_timeout.sock_read)

    async def close(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()


class StreamedResponse:
    """A successful response whose body is read as it arrives, line by line."""

    def __init__(self, response: aiohttp.ClientResponse, read_timeout: float | None) -> None:
        self._response = response
        self._read_timeout = read_timeout

    async def line_batches(self) -> AsyncIterator[list[str]]:
        """The body's lines (without their line ends) as they arrive, grouped by network read:
        each batch holds the lines a read completed (never empty), so a reader pays its per-item
        cost once per read, not per line. `HttpTimeoutError` when no data came within the
        timeout, `HttpConnectionError` when the connection broke before the body's end."""
        pending = b""
        try:
            async for data in self._response.content.iter_any():
                pending += data
                if b"\n" not in data and b"\r" not in data:
                    continue
                *complete, pending = pending.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n")
                yield [line.decode(errors="replace") for line in complete]
        except TimeoutError as exc:
            raise HttpTimeoutError(f"no data within {self._read_timeout:g} s") from exc
        except aiohttp.ClientError as exc:
            raise HttpConnectionError(f"{type(exc).__name__}: {exc}") from exc
        if pending:
            yield [pending.decode(errors="replace")]

    async def close(self) -> None:
        """Release the connection: back to the pool when the body was read to its end, else closed."""
        self._response.release()
