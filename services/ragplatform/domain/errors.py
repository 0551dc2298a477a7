"""Domain exceptions. Each maps to one gRPC status code, in one place (core/error_mapping.py).

Every message is written for the person who caused it: what was wrong and what to do.
"""

from __future__ import annotations


class RagError(Exception):
    """Base of every error a caller may be told about."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidArgument(RagError):
    """The request itself is wrong (empty file, unsupported type, too large, bad field)."""


class NotFound(RagError):
    """The named thing does not exist for this tenant."""


class AlreadyExists(RagError):
    """The thing to create exists already."""


class Unauthenticated(RagError):
    """No credentials, or credentials that name no one."""


class PermissionDenied(RagError):
    """Known caller, not allowed to do this."""


class ResourceExhausted(RagError):
    """A rate limit or quota was hit; `retry_after_seconds` says when to try again."""

    def __init__(self, message: str, retry_after_seconds: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_seconds = retry_after_seconds


class FailedPrecondition(RagError):
    """The system is not in a state that allows this (e.g. embedder dimension mismatch)."""


class Unavailable(RagError):
    """A backend (database, queue, model endpoint) cannot be reached now; retrying may work."""


class DeadlineExceeded(RagError):
    """The work did not finish within the caller's deadline."""


class Internal(RagError):
    """Something on our side is broken (misconfiguration, a bug); the caller cannot fix it."""


class DocumentRejected(RagError):
    """A worker cannot ingest a document (corrupt, empty after parsing). Not retried."""
