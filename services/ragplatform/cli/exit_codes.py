"""The `ragplatform` command's exit codes: a contract with scripts (also in docs/cli.md and `--help`)."""

from __future__ import annotations

from enum import IntEnum

import grpc


class ExitCode(IntEnum):
    OK = 0
    # The platform answered with an error (bad question, not found, internal), some uploads
    # failed, or `status` found a service that is not SERVING.
    FAILED = 1
    # The command line or the local configuration is wrong (unknown option, bad --filter, no API key).
    USAGE = 2
    # The platform could not be reached, or is overloaded/out of time: retrying later may work.
    UNAVAILABLE = 3
    # The API key was missing, unknown or revoked, or may not do this.
    UNAUTHENTICATED = 4


EXIT_CODES_HELP = (
    "Exit codes: 0 ok; 1 the platform answered with an error, an upload failed, or a service is not "
    "serving; 2 bad command line or configuration; 3 platform unreachable, overloaded or out of time "
    "(retry later); 4 API key missing, unknown or not allowed."
)

_RETRY_LATER = {
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
}
_AUTH = {grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED}


def exit_code_for(code: grpc.StatusCode) -> ExitCode:
    """The exit code for a call that failed with gRPC status `code`."""
    if code in _RETRY_LATER:
        return ExitCode.UNAVAILABLE
    if code in _AUTH:
        return ExitCode.UNAUTHENTICATED
    return ExitCode.FAILED
