"""One way to build the `openai` client for an OpenAI-compatible endpoint, for the requests off
the hot path (a follow-up's query rewrite, the optional LLM reranker): there the SDK's typed
requests and responses cost nothing that matters. The requests of every answer (the query's
embedding, the streamed chat completion) go through `openai_http` instead, which `openai_errors`
maps exactly as it maps this client's errors.
"""

from __future__ import annotations

from openai import AsyncOpenAI
from pydantic import SecretStr


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
