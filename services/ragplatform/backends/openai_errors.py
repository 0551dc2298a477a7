"""How failures of an OpenAI-compatible endpoint become domain errors (one place, shared by the
chat and embeddings adapters). Each message says what failed and which setting to check."""

from __future__ import annotations

import openai

from ragplatform.domain.errors import (
    FailedPrecondition,
    InvalidArgument,
    RagError,
    ResourceExhausted,
    Unavailable,
)


class CredentialsRefused(FailedPrecondition):
    """The endpoint refused the API key (HTTP 401/403). Every model behind the same endpoint and
    key would refuse too, so callers should not fall back to another model."""


def is_transient(exc: BaseException) -> bool:
    """Worth retrying: timeouts, unreachable endpoint, rate limits and server-side errors."""
    if isinstance(exc, openai.APIConnectionError):  # includes APITimeoutError
        return True
    return isinstance(exc, openai.APIStatusError) and (exc.status_code == 429 or exc.status_code >= 500)


def counts_against_endpoint(exc: BaseException) -> bool:
    """A failure that says the endpoint is unwell (for the circuit breaker), as opposed to one
    that says the request or the configuration is wrong."""
    if isinstance(exc, openai.APIConnectionError):
        return True
    return isinstance(exc, openai.APIStatusError) and exc.status_code >= 500


def map_openai_error(exc: Exception, *, url: str, model: str, key_var: str, model_var: str, timeout: float) -> RagError:
    """The domain error for an `openai` exception. `key_var`/`model_var` name the settings a
    person should check (e.g. RAG_LLM_API_KEY, RAG_LLM_MODEL)."""
    where = f"the endpoint {url or 'api.openai.com'} (model {model!r})"
    if isinstance(exc, RagError):
        return exc
    if isinstance(exc, openai.APITimeoutError):
        return Unavailable(
            f"{where} did not answer within {timeout:g} s; it may be overloaded. Try again, or raise the "
            "timeout setting."
        )
    if isinstance(exc, openai.APIConnectionError):
        return Unavailable(
            f"cannot reach {where}: {exc.__cause__ or exc}. Check the URL setting and that the server is running."
        )
    if isinstance(exc, openai.AuthenticationError | openai.PermissionDeniedError):
        return CredentialsRefused(f"{where} refused the API key (HTTP {exc.status_code}); check {key_var}.")
    if isinstance(exc, openai.RateLimitError):
        retry_after = _retry_after(exc)
        return ResourceExhausted(
            f"{where} is rate-limiting us (HTTP 429: {_server_message(exc)}); try again"
            + (f" in {retry_after:g} s." if retry_after is not None else " shortly."),
            retry_after_seconds=retry_after,
        )
    if isinstance(exc, openai.NotFoundError):
        return FailedPrecondition(f"{where} does not know this model (HTTP 404); check {model_var}.")
    if isinstance(exc, openai.APIStatusError) and exc.status_code >= 500:
        return Unavailable(f"{where} failed (HTTP {exc.status_code}: {_server_message(exc)}); try again shortly.")
    if isinstance(exc, openai.APIStatusError):
        return InvalidArgument(f"{where} rejected the request (HTTP {exc.status_code}: {_server_message(exc)}).")
    return Unavailable(f"{where} failed unexpectedly ({type(exc).__name__}: {exc}); try again.")


def _server_message(exc: openai.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, dict):
        message = body.get("message") or (body.get("error") or {}).get("message")
        if message:
            return str(message)[:300]
    return exc.message[:300]


def _retry_after(exc: openai.APIStatusError) -> float | None:
    value = exc.response.headers.get("retry-after")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None
