"""An upstream's refusal for capacity, seen while serving a call on the Ask path, lowers this
process's admission limit (the edge sheds what the services behind it cannot take); other
upstream errors, and refusals of calls off the Ask path, do not."""

from __future__ import annotations

from typing import Any

import grpc
import pytest

from ragplatform.core.adaptive_limit import LimitPolicy
from ragplatform.core.clients import upstream_errors
from ragplatform.core.interceptors.admission import AdmissionInterceptor
from ragplatform.domain.errors import ResourceExhausted, Unavailable


def refusal(code: grpc.StatusCode) -> grpc.aio.AioRpcError:
    trailing = grpc.aio.Metadata(("retry-after-seconds", "1.000"))
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), trailing, details="at capacity")


async def serve_one_call(
    admission: AdmissionInterceptor, upstream_error: grpc.aio.AioRpcError, ask_path: bool = True
) -> None:
    """What a servicer does: call upstream inside the call's admission scope."""
    context: Any = None  # the scope only needs the context to refuse, and this call is admitted
    async with admission.scope("/ragplatform.v1.GatewayService/Ask", context):
        with upstream_errors("generation", admission_signal=ask_path):
            raise upstream_error


@pytest.mark.parametrize(
    ("code", "error", "cut"),
    [(grpc.StatusCode.RESOURCE_EXHAUSTED, ResourceExhausted, True), (grpc.StatusCode.UNAVAILABLE, Unavailable, False)],
)
async def test_only_a_refusal_for_capacity_upstream_lowers_the_limit(
    code: grpc.StatusCode, error: type[Exception], cut: bool
) -> None:
    admission = AdmissionInterceptor("gateway", LimitPolicy(ceiling=100, lag_target_seconds=0.01), 1.0)
    with pytest.raises(error):
        await serve_one_call(admission, refusal(code))
    assert (admission.limit < 100) is cut
    assert admission.in_flight == 0


async def test_a_refusal_off_the_ask_path_does_not_lower_the_limit() -> None:
    admission = AdmissionInterceptor("gateway", LimitPolicy(ceiling=100, lag_target_seconds=0.01), 1.0)
    with pytest.raises(ResourceExhausted):
        await serve_one_call(admission, refusal(grpc.StatusCode.RESOURCE_EXHAUSTED), ask_path=False)
    assert admission.limit == 100


async def test_outside_a_served_call_nothing_is_lowered() -> None:
    admission = AdmissionInterceptor("gateway", LimitPolicy(ceiling=100, lag_target_seconds=0.01), 1.0)
    with pytest.raises(ResourceExhausted), upstream_errors("generation", admission_signal=True):
        raise refusal(grpc.StatusCode.RESOURCE_EXHAUSTED)
    assert admission.limit == 100
