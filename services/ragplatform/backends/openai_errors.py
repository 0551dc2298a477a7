"""How failures of an OpenAI-compatible endpoint become domain errors (one place, shared by the
chat and embeddings adapters, whether the request went through the `openai` client or through
`openai_http`). Each message says what failed and which setting to check."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import openai
import structlog

from ragplatform.backends.openai_http import HttpConnectionError, HttpStatusError, HttpTimeoutError
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


def _unreachable(exc: BaseException) -> bool:
    """No answer at all: a timeout, a refused or dropped connection."""
    return isinstance(exc, openai.APIConnectionError | HttpConnectionError)  # timeouts included


def _timed_out(exc: BaseException) -> bool:
    return isinstance(exc, openai.APITimeoutError | HttpTimeoutError)


def _status(exc: BaseException) -> int | None:
    """The HTTP error status the endpoint answered with, if it answered with one."""
    if isinstance(exc, openai.APIStatusError):
        return exc.status_code
    if isinstance(exc, HttpStatusError):
        return exc.status
    return None


def is_transient(exc: BaseException) -> bool:
    """Worth retrying: timeouts, unreachable endpoint, rate limits and server-side errors."""
    status = _status(exc)
    return _unreachable(exc) or (status is not None and (status == 429 or status >= 500))


def counts_against_endpoint(exc: BaseException) -> bool:
    """A failure that says the endpoint is unwell (for the circuit breaker), as opposed to one
    that says the request or the configuration is wrong."""
    status = _status(exc)
    return _unreachable(exc) or (status is not None and status >= 500)


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
    if _timed_out(exc):
        return Unavailable(
            f"{where} did not answer within {endpoint.timeout:g} s; it may be overloaded. Try again, or raise the "
            "timeout setting."
        )
    if _unreachable(exc):
        return Unavailable(
            f"cannot reach {where}; the backend is unavailable. Retry shortly; if it persists, check "
            f"{endpoint.url_var} and that the server is running (the endpoint and the cause are in this "
            "service's log)."
        )
    status = _status(exc)
    if status is None:
        return Unavailable(f"{where} failed unexpectedly ({type(exc).__name__}); try again.")
    if status in (401, 403):
        return CredentialsRefused(f"{where} refused the API key (HTTP {status}); check {endpoint.key_var}.")
    if status == 429:
        retry_after = _retry_after(exc)
        return ResourceExhausted(
            f"{where} is rate-limiting us (HTTP 429: {_server_message(exc)}); try again"
            + (f" in {retry_after:g} s." if retry_after is not None else " shortly."),
            retry_after_seconds=retry_after,
        )
    if status == 404:
        return FailedPrecondition(f"{where} does not know this model (HTTP 404); check {endpoint.model_var}.")
    if status >= 500:
        return Unavailable(f"{where} failed (HTTP {status}: {_server_message(exc)}); try again shortly.")
    return InvalidArgument(f"{where} rejected the request (HTTP {status}: {_server_message(exc)}).")


def _server_message(exc: BaseException) -> str:
    """The endpoint's own words about an error status (redacted, bounded)."""
    if isinstance(exc, HttpStatusError):
        body, fallback = exc.error_body(), exc.body.decode(errors="replace")
    elif isinstance(exc, openai.APIStatusError):
        body, fallback = exc.body, exc.message
    else:
        return ""
    if isinstance(body, dict):
        message = body.get("message") or (body.get("error") or {}).get("message")
        if message:
            return redact_text(str(message)[:300])
    return redact_text(fallback[:300])


def _retry_after(exc: BaseException) -> float | None:
    headers: Mapping[str, str] = {}
    if isinstance(exc, HttpStatusError):
        headers = exc.headers
    elif isinstance(exc, openai.APIStatusError):
        headers = exc.response.headers
    value = headers.get("retry-after")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None
