"""Hostile requests against the real gateway (all services in this process, embedded backends).

Malformed ones (bytes that do not decode as the request message, broken upload streams, an upload
refused while the client is still sending, crafted page tokens) must end at once with
INVALID_ARGUMENT and a message that says what to send, be logged once and counted, and never give
INTERNAL or UNKNOWN. Client headers that claim another tenant or an unusable request id must not
reach logs or data."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import AsyncIterator, Callable, Iterator

import grpc
import pytest
import pytest_asyncio
import structlog
from prometheus_client import REGISTRY

from ragplatform.v1 import common_pb2, gateway_pb2, gateway_pb2_grpc
from tests.integration.services.conftest import InProcessPlatform, ServiceStarter, start_platform

pytestmark = pytest.mark.asyncio(loop_scope="module")

SERVICE = "/ragplatform.v1.GatewayService/"
UNARY = ["Search", "GetJob", "ListJobs", "ListDocuments", "DeleteDocument", "ListConversations", "GetConversation"]
TERMINAL = (common_pb2.JOB_STATE_SUCCEEDED, common_pb2.JOB_STATE_FAILED)
GARBAGE = b"\xff\xff\xff"  # a field header with no valid wire type: never a protobuf message


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def platform(shared: ServiceStarter) -> InProcessPlatform:
    # All services share this process's event loop here, so on a busy machine ten 8 MiB uploads
    # lag it past the adaptive admission target and a call may be refused (RESOURCE_EXHAUSTED,
    # seen once in CI at load 12). These tests are about hostile input, not load: a fixed limit
    # (admission under load is tests/integration/core/test_admission.py's).
    return await start_platform(shared, internal_token="malformed-test-token", admission_lag_target_seconds=0)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def channel(platform: InProcessPlatform) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(platform.gateway.address) as opened:
        yield opened


@pytest_asyncio.fixture(loop_scope="module")
async def auth(platform: InProcessPlatform, tenant: str) -> tuple[tuple[str, str], ...]:
    key, _ = await platform.create_api_key(tenant)
    return (("authorization", f"Bearer {key}"),)


async def settled(condition: Callable[[], bool], seconds: float = 5.0) -> bool:
    """Wait for `condition`: the server counts and logs a call just after its status went out,
    so a client that has its answer may look a moment too early."""
    for _ in range(int(seconds / 0.01)):
        if condition():
            return True
        await asyncio.sleep(0.01)
    return condition()


def handled(method: str, code: str) -> float:
    labels = {"method": SERVICE + method, "code": code}
    value = REGISTRY.get_sample_value("ragplatform_grpc_server_handled_total", labels)
    return value or 0.0


def metadata_message() -> bytes:
    return gateway_pb2.IngestRequest(metadata=gateway_pb2.IngestMetadata(filename="a.txt")).SerializeToString()


async def raw_ingest(
    channel: grpc.aio.Channel, messages: Iterator[bytes], auth: tuple[tuple[str, str], ...], timeout: float = 20
) -> grpc.aio.AioRpcError:
    call = channel.stream_unary(SERVICE + "Ingest")(messages, metadata=auth, timeout=timeout)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call
    return info.value


@pytest.mark.parametrize("method", UNARY)
async def test_undecodable_unary_request_is_invalid_argument_logged_and_counted(
    channel: grpc.aio.Channel, auth: tuple[tuple[str, str], ...], method: str
) -> None:
    before = handled(method, "INVALID_ARGUMENT")
    with structlog.testing.capture_logs() as logs:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await channel.unary_unary(SERVICE + method)(GARBAGE, metadata=auth, timeout=10)
        assert await settled(lambda: handled(method, "INVALID_ARGUMENT") == before + 1)
        assert await settled(lambda: any(entry["event"] == "rpc" for entry in logs))
        await asyncio.sleep(0.1)  # room for a second line, which must not come
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "not a valid ragplatform.v1.Gateway" in (info.value.details() or "")
    access = [entry for entry in logs if entry["event"] == "rpc"]
    assert [entry["code"] for entry in access] == ["INVALID_ARGUMENT"]
    assert not [entry for entry in logs if entry.get("exc_info") or entry["log_level"] == "error"]


async def test_undecodable_ask_is_invalid_argument(
    channel: grpc.aio.Channel, auth: tuple[tuple[str, str], ...]
) -> None:
    call = channel.unary_stream(SERVICE + "Ask")(GARBAGE, metadata=auth, timeout=10)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        _ = [m async for m in call]
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "ragplatform.v1.AskRequest" in (info.value.details() or "")


async def test_undecodable_request_without_a_key_is_still_unauthenticated(channel: grpc.aio.Channel) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await channel.unary_unary(SERVICE + "ListJobs")(GARBAGE, timeout=10)
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_an_undecodable_message_after_the_metadata_ends_the_upload_at_once(
    channel: grpc.aio.Channel, auth: tuple[tuple[str, str], ...]
) -> None:
    before = handled("Ingest", "INVALID_ARGUMENT")
    started = time.monotonic()
    error = await raw_ingest(channel, iter([metadata_message(), GARBAGE]), auth)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error.details()
    assert "ragplatform.v1.IngestRequest" in (error.details() or "")
    assert time.monotonic() - started < 5  # not the 20 s deadline
    assert await settled(lambda: handled("Ingest", "INVALID_ARGUMENT") == before + 1)


async def test_an_undecodable_first_upload_message_is_invalid_argument(
    channel: grpc.aio.Channel, auth: tuple[tuple[str, str], ...]
) -> None:
    error = await raw_ingest(channel, iter([GARBAGE, b"more"]), auth)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error.details()


async def test_a_refused_upload_is_invalid_argument_while_the_client_still_streams(
    channel: grpc.aio.Channel, auth: tuple[tuple[str, str], ...]
) -> None:
    """The ingestion service refuses the filename at the first message; the 8 MiB behind it must
    not turn the status into INTERNAL (grpc's client fails a write after the call ended)."""
    bad_name = gateway_pb2.IngestRequest(metadata=gateway_pb2.IngestMetadata(filename="../etc/passwd"))
    chunk = gateway_pb2.IngestRequest(chunk=b"x" * (256 * 1024)).SerializeToString()

    def messages() -> Iterator[bytes]:
        yield bad_name.SerializeToString()
        for _ in range(32):  # 8 MiB
            yield chunk

    codes = await asyncio.gather(*(raw_ingest(channel, messages(), auth) for _ in range(10)))
    assert {error.code() for error in codes} == {grpc.StatusCode.INVALID_ARGUMENT}
    assert all("not a plain file name" in (error.details() or "") for error in codes)


NESTED_TOKEN = base64.urlsafe_b64encode(b"[" * 1000 + b"]" * 1000).decode()
LISTINGS = {
    "ListJobs": gateway_pb2.GatewayListJobsRequest,
    "ListDocuments": gateway_pb2.GatewayListDocumentsRequest,
    "ListConversations": gateway_pb2.GatewayListConversationsRequest,
}


@pytest.mark.parametrize("method", list(LISTINGS))
@pytest.mark.parametrize("token", [NESTED_TOKEN, "A" * 5000, "bm90IGEgdG9rZW4"], ids=["nested", "long", "foreign"])
async def test_a_crafted_page_token_is_invalid_argument(
    channel: grpc.aio.Channel, auth: tuple[tuple[str, str], ...], method: str, token: str
) -> None:
    request = LISTINGS[method](page_token=token)
    call = channel.unary_unary(SERVICE + method, request_serializer=type(request).SerializeToString)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call(request, metadata=auth, timeout=10)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "start again with an empty page_token" in (info.value.details() or "")
    assert token[:20] not in (info.value.details() or "")


async def test_a_page_token_does_not_work_for_another_tenant(
    platform: InProcessPlatform, channel: grpc.aio.Channel, auth: tuple[tuple[str, str], ...], tenant: str
) -> None:
    stub = gateway_pb2_grpc.GatewayServiceStub(channel)
    for name in ("a.txt", "b.txt"):
        messages = [
            gateway_pb2.IngestRequest(metadata=gateway_pb2.IngestMetadata(filename=name)),
            gateway_pb2.IngestRequest(chunk=f"text of {name}".encode()),
        ]
        await stub.Ingest(iter(messages), metadata=auth, timeout=20)
    page = await stub.ListDocuments(gateway_pb2.GatewayListDocumentsRequest(page_size=1), metadata=auth)
    assert page.next_page_token
    rest = await stub.ListDocuments(
        gateway_pb2.GatewayListDocumentsRequest(page_size=1, page_token=page.next_page_token), metadata=auth
    )
    assert [d.filename for d in [*page.documents, *rest.documents]] == ["b.txt", "a.txt"]
    other_key, _ = await platform.create_api_key(tenant + "-other")
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.ListDocuments(
            gateway_pb2.GatewayListDocumentsRequest(page_size=1, page_token=page.next_page_token),
            metadata=(("authorization", f"Bearer {other_key}"),),
        )
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT


# --- client headers the gateway must not trust ------------------------------------------------


async def test_a_spoofed_tenant_header_reaches_neither_logs_nor_data(
    platform: InProcessPlatform, channel: grpc.aio.Channel, auth: tuple[tuple[str, str], ...], tenant: str
) -> None:
    victim = tenant + "-victim"
    victim_key, _ = await platform.create_api_key(victim)
    spoofing = (*auth, ("x-ragplatform-tenant", victim), ("x-ragplatform-internal-token", "guess"))
    stub = gateway_pb2_grpc.GatewayServiceStub(channel)
    messages = [
        gateway_pb2.IngestRequest(metadata=gateway_pb2.IngestMetadata(filename="spoof.txt")),
        gateway_pb2.IngestRequest(chunk=b"written by the authenticated tenant"),
    ]
    with structlog.testing.capture_logs() as logs:
        await stub.Ingest(iter(messages), metadata=spoofing, timeout=20)
        await stub.ListDocuments(gateway_pb2.GatewayListDocumentsRequest(), metadata=spoofing, timeout=10)
        # Two calls, each logged by the gateway and by the ingestion service (a worker may log
        # its own calls for an earlier test's job meanwhile).
        assert await settled(lambda: [e.get("tenant") for e in logs if e["event"] == "rpc"].count(tenant) == 4)
    assert victim not in repr(logs)
    mine = await stub.ListDocuments(gateway_pb2.GatewayListDocumentsRequest(), metadata=auth)
    assert [d.filename for d in mine.documents] == ["spoof.txt"]
    theirs = await stub.ListDocuments(
        gateway_pb2.GatewayListDocumentsRequest(), metadata=(("authorization", f"Bearer {victim_key}"),)
    )
    assert list(theirs.documents) == []


@pytest.mark.parametrize("sent", ["r" * 7000, "two parts;drop"], ids=["7000 chars", "spaces"])
async def test_an_unusable_request_id_is_replaced(
    channel: grpc.aio.Channel, auth: tuple[tuple[str, str], ...], sent: str
) -> None:
    call = gateway_pb2_grpc.GatewayServiceStub(channel).ListJobs(
        gateway_pb2.GatewayListJobsRequest(), metadata=(*auth, ("x-request-id", sent)), timeout=10
    )
    await call
    returned = dict(await call.trailing_metadata())["x-request-id"]
    assert returned != sent
    assert 0 < len(returned) <= 64


async def test_a_plain_request_id_is_kept(channel: grpc.aio.Channel, auth: tuple[tuple[str, str], ...]) -> None:
    call = gateway_pb2_grpc.GatewayServiceStub(channel).ListJobs(
        gateway_pb2.GatewayListJobsRequest(), metadata=(*auth, ("x-request-id", "client-42.a")), timeout=10
    )
    await call
    assert dict(await call.trailing_metadata())["x-request-id"] == "client-42.a"


async def test_a_filename_with_a_terminal_escape_is_refused(
    channel: grpc.aio.Channel, auth: tuple[tuple[str, str], ...]
) -> None:
    messages = [
        gateway_pb2.IngestRequest(metadata=gateway_pb2.IngestMetadata(filename="a\x1b[2Jb\nc.txt")),
        gateway_pb2.IngestRequest(chunk=b"text"),
    ]
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await gateway_pb2_grpc.GatewayServiceStub(channel).Ingest(iter(messages), metadata=auth, timeout=10)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "control characters" in (info.value.details() or "")


async def test_a_utf16_file_without_a_bom_is_ingested_as_text(
    channel: grpc.aio.Channel, auth: tuple[tuple[str, str], ...]
) -> None:
    stub = gateway_pb2_grpc.GatewayServiceStub(channel)
    messages = [
        gateway_pb2.IngestRequest(metadata=gateway_pb2.IngestMetadata(filename="windows.txt")),
        gateway_pb2.IngestRequest(chunk="The Zephyr-9 pump runs at 12 bar.".encode("utf-16-le")),
    ]
    reply = await stub.Ingest(iter(messages), metadata=auth, timeout=20)
    deadline = time.monotonic() + 30
    job = reply.job
    while job.state not in TERMINAL and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
        job = await stub.GetJob(gateway_pb2.GatewayGetJobRequest(job_id=reply.job.job_id), metadata=auth)
    assert job.state == common_pb2.JOB_STATE_SUCCEEDED, job.error
    found = await stub.Search(gateway_pb2.GatewaySearchRequest(query="Zephyr-9 pump bar"), metadata=auth)
    assert "12 bar" in found.passages[0].text


async def test_undecodable_health_and_reflection_requests_are_invalid_argument(channel: grpc.aio.Channel) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as health_info:
        await channel.unary_unary("/grpc.health.v1.Health/Check")(GARBAGE, timeout=10)
    reflection = channel.stream_stream("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo")
    with pytest.raises(grpc.aio.AioRpcError) as reflection_info:
        await reflection(iter([GARBAGE]), timeout=10).read()
    assert health_info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert reflection_info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    health = await channel.unary_unary("/grpc.health.v1.Health/Check")(b"", timeout=10)
    assert health == b"\x08\x01"  # SERVING
