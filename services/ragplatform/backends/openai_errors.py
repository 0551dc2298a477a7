"""How failures of an OpenAI-compatible endpoint become domain errors (one place, shared by the
chat and embeddings adapters). Each message says what failed and which setting to check."""

from __future__ import annotations

from dataclasses import dataclass

import openai
import structlog

from ragplatform.core.redaction import redact_text, redact_url
from ragplatform.domain.errors import (
    FailedPrecondition,
    InvalidArgument,
    RagError,
    ResourceExhausted,
    Unavailable,
)

log = structlog.get_logger("ragplatform.model_endpoints")


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


@dataclass(frozen=True)
class Endpoint:
    """What a person needs to hear about an endpoint, and what only its operator may see.

    `url` goes to the log only (redacted); clients hear `what` ("the chat model endpoint") and
    the settings to check, never an internal address."""

    what: str
    url: str
    url_var: str
    key_var: str
    model_var: str
    timeout: float


def map_openai_error(exc: Exception, *, endpoint: Endpoint, model: str) -> RagError:
    """The domain error for an `openai` exception. The message names the endpoint by its role and
    settings, never by its URL; the URL (redacted) and the library's own words go to the log."""
    if isinstance(exc, RagError):
        return exc
    log.warning(
        "model endpoint call failed",
        endpoint=redact_url(endpoint.url or "https://api.openai.com/v1"),
        model=model,
        error=f"{type(exc).__name__}: {exc.__cause__ or exc}",
    )
    where = f"{endpoint.what} (model {model!r})"
    if isinstance(exc, openai.APITimeoutError):
        return Unavailable(
            f"{where} did not answer within {endpoint.timeout:g} s; it may be overloaded. Try again, or raise the "
            "timeout setting."
        )
    if isinstance(exc, openai.APIConnectionError):
        return Unavailable(
            f"cannot reach {where}; the backend is unavailable. Retry shortly; if it persists, check "
            f"{endpoint.url_var} and that the server is running (the endpoint and the cause are in this "
            "service's log)."
        )
    if isinstance(exc, openai.AuthenticationError | openai.PermissionDeniedError):
        return CredentialsRefused(f"{where} refused the API key (HTTP {exc.status_code}); check {endpoint.key_var}.")
    if isinstance(exc, openai.RateLimitError):
        retry_after = _retry_after(exc)
        return ResourceExhausted(
            f"{where} is rate-limiting us (HTTP 429: {_server_message(exc)}); try again"
            + (f" in {retry_after:g} s." if retry_after is not None else " shortly."),
            retry_after_seconds=retry_after,
        )
    if isinstance(exc, openai.NotFoundError):
        return FailedPrecondition(f"{where} does not know this model (HTTP 404); check {endpoint.model_var}.")
    if isinstance(exc, openai.APIStatusError) and exc.status_code >= 500:
        return Unavailable(f"{where} failed (HTTP {exc.status_code}: {_server_message(exc)}); try again shortly.")
    if isinstance(exc, openai.APIStatusError):
        return InvalidArgument(f"{where} rejected the request (HTTP {exc.status_code}: {_server_message(exc)}).")
    return Unavailable(f"{where} failed unexpectedly ({type(exc).__name__}); try again.")


def _server_message(exc: openai.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, dict):
        message = body.get("message") or (body.get("error") or {}).get("message")
        if message:
            return redact_text(str(message)[:300])
    return redact_text(exc.message[:300])


def _retry_after(exc: openai.APIStatusError) -> float | None:
    value = exc.response.headers.get("retry-after")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None
