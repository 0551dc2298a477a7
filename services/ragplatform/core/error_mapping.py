"""Domain exceptions -> gRPC status codes: the one place this mapping lives."""

from __future__ import annotations

from collections.abc import Iterable

import grpc

from ragplatform.domain import errors

_CODES: dict[type[errors.RagError], grpc.StatusCode] = {
    errors.InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    errors.NotFound: grpc.StatusCode.NOT_FOUND,
    errors.AlreadyExists: grpc.StatusCode.ALREADY_EXISTS,
    errors.Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
    errors.PermissionDenied: grpc.StatusCode.PERMISSION_DENIED,
    errors.ResourceExhausted: grpc.StatusCode.RESOURCE_EXHAUSTED,
    errors.FailedPrecondition: grpc.StatusCode.FAILED_PRECONDITION,
    errors.Unavailable: grpc.StatusCode.UNAVAILABLE,
    errors.DeadlineExceeded: grpc.StatusCode.DEADLINE_EXCEEDED,
    errors.Internal: grpc.StatusCode.INTERNAL,
    errors.DocumentRejected: grpc.StatusCode.INVALID_ARGUMENT,
}

# The reverse, for clients that turn an upstream status back into a domain error.
_ERRORS: dict[grpc.StatusCode, type[errors.RagError]] = {
    code: exc for exc, code in _CODES.items() if exc is not errors.DocumentRejected
}

RETRY_AFTER_KEY = "retry-after-seconds"


def status_for(exc: errors.RagError) -> grpc.StatusCode:
    """The status code for a domain error (the closest ancestor in the table wins)."""
    for cls in type(exc).__mro__:
        if cls in _CODES:
            return _CODES[cls]  # type: ignore[index]
    return grpc.StatusCode.INTERNAL


def error_for(code: grpc.StatusCode, message: str, retry_after_seconds: float | None = None) -> errors.RagError:
    """A domain error for an upstream status; unknown codes become `Unavailable`. An upstream's
    retry-after hint travels on (a backend at capacity makes the gateway's caller wait too)."""
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
        return errors.ResourceExhausted(message, retry_after_seconds)
    return _ERRORS.get(code, errors.Unavailable)(message)


def retry_after_from(metadata: Iterable[tuple[str, str | bytes]] | None) -> float | None:
    """The retry-after hint in a call's trailing metadata, or None."""
    for key, value in metadata or ():
        if key == RETRY_AFTER_KEY:
            try:
                return float(value)
            except ValueError:
                return None
    return None


def trailing_metadata_for(exc: errors.RagError) -> tuple[tuple[str, str], ...]:
    if isinstance(exc, errors.ResourceExhausted) and exc.retry_after_seconds is not None:
        return ((RETRY_AFTER_KEY, f"{exc.retry_after_seconds:.3f}"),)
    return ()
