import grpc
import pytest

from ragplatform.client import jittered
from ragplatform.core.error_mapping import error_for, retry_after_from, status_for, trailing_metadata_for
from ragplatform.domain import errors


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (errors.InvalidArgument("x"), grpc.StatusCode.INVALID_ARGUMENT),
        (errors.NotFound("x"), grpc.StatusCode.NOT_FOUND),
        (errors.Unauthenticated("x"), grpc.StatusCode.UNAUTHENTICATED),
        (errors.ResourceExhausted("x", 1.5), grpc.StatusCode.RESOURCE_EXHAUSTED),
        (errors.Unavailable("x"), grpc.StatusCode.UNAVAILABLE),
        (errors.DeadlineExceeded("x"), grpc.StatusCode.DEADLINE_EXCEEDED),
        (errors.FailedPrecondition("x"), grpc.StatusCode.FAILED_PRECONDITION),
        (errors.DocumentRejected("x"), grpc.StatusCode.INVALID_ARGUMENT),
    ],
)
def test_each_domain_error_has_its_status(exc: errors.RagError, code: grpc.StatusCode) -> None:
    assert status_for(exc) == code


def test_subclass_of_a_domain_error_maps_like_its_parent() -> None:
    class QuotaHit(errors.ResourceExhausted):
        pass

    assert status_for(QuotaHit("over")) == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_upstream_status_becomes_the_same_domain_error() -> None:
    exc = error_for(grpc.StatusCode.NOT_FOUND, "no such job")
    assert isinstance(exc, errors.NotFound)
    assert exc.message == "no such job"
    assert isinstance(error_for(grpc.StatusCode.DATA_LOSS, "?"), errors.Unavailable)


def test_retry_after_travels_in_trailing_metadata() -> None:
    assert trailing_metadata_for(errors.ResourceExhausted("slow down", 2.0)) == (("retry-after-seconds", "2.000"),)
    assert trailing_metadata_for(errors.NotFound("x")) == ()


def test_an_upstream_retry_hint_travels_with_its_refusal() -> None:
    hint = retry_after_from([("retry-after-seconds", "0.250")])
    refusal = error_for(grpc.StatusCode.RESOURCE_EXHAUSTED, "at capacity", hint)
    assert isinstance(refusal, errors.ResourceExhausted)
    assert refusal.retry_after_seconds == 0.25
    # ... and goes back out to our own caller in the same format
    assert trailing_metadata_for(refusal) == (("retry-after-seconds", "0.250"),)
    assert retry_after_from([("other", "1")]) is None
    assert retry_after_from([("retry-after-seconds", "soon")]) is None


def test_clients_wait_at_least_the_hint_and_spread_out() -> None:
    waits = [jittered(0.4) for _ in range(200)]
    assert min(waits) >= 0.4
    assert max(waits) <= 0.6
    assert len({round(w, 3) for w in waits}) > 50  # not all at once
