"""One way to build the `openai` client for an OpenAI-compatible endpoint (chat or embeddings),
and to send it a request on the hot path.

The resource methods (`chat.completions.create`, `embeddings.create`) re-type their whole body
recursively (`async_maybe_transform`) before sending it: nothing to do for the plain JSON built
here, and the largest client cost per request after the response models (~6 % of generation's
CPU, more of the client's own). `post_streamed` and `post_raw` send the same body through the
same client — its auth, timeout, HTTP pool, tracing and typed errors for an HTTP error status —
and return the raw response, as `with_streaming_response` / `with_raw_response` do.
"""

from __future__ import annotations

from collections.abc import Awaitable, Mapping
from typing import Any, cast

from openai import AsyncOpenAI, AsyncStream
from openai._base_client import make_request_options
from openai._constants import RAW_RESPONSE_HEADER
from openai._legacy_response import LegacyAPIResponse
from openai._response import AsyncAPIResponse, AsyncResponseContextManager
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from openai.types.create_embedding_response import CreateEmbeddingResponse
from pydantic import SecretStr

ChatStreamResponse = AsyncAPIResponse[AsyncStream[ChatCompletionChunk]]


def make_openai_client(url: str, api_key: SecretStr | None, timeout_seconds: float) -> AsyncOpenAI:
    """A client for `url` (empty: api.openai.com) that never retries by itself: callers decide
    what is worth retrying, and never after text reached their caller. Local servers (vLLM,
    Ollama, llama.cpp) need no key, but the client insists on one, so a placeholder is sent."""
    return AsyncOpenAI(
        base_url=url or None,
        api_key=(api_key.get_secret_value() if api_key else "") or "no-key-configured",
        timeout=timeout_seconds,
        max_retries=0,
    )


async def post_streamed(client: AsyncOpenAI, path: str, body: Mapping[str, Any]) -> ChatStreamResponse:
    """POST a streamed chat completion; the response's body is not read yet (close it)."""
    request = client.post(
        path,
        body=body,
        options=make_request_options(extra_headers={RAW_RESPONSE_HEADER: "stream"}, security={"bearer_auth": True}),
        cast_to=ChatCompletion,
        stream=True,
        stream_cls=AsyncStream[ChatCompletionChunk],
    )
    return await AsyncResponseContextManager(cast(Awaitable[ChatStreamResponse], request)).__aenter__()


async def post_raw(client: AsyncOpenAI, path: str, body: Mapping[str, Any]) -> bytes:
    """POST a request and return its whole body, unparsed."""
    response = await client.post(
        path,
        body=body,
        options=make_request_options(extra_headers={RAW_RESPONSE_HEADER: "true"}, security={"bearer_auth": True}),
        cast_to=CreateEmbeddingResponse,
    )
    return cast(LegacyAPIResponse[CreateEmbeddingResponse], response).content
