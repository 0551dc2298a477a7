"""`GatewayClient`: a small async client for the gateway, used by the CLI, tests and benchmarks.

It sets the API key and a deadline on every call and streams uploads in 1 MiB pieces. A call
refused with a `retry-after-seconds` hint (RESOURCE_EXHAUSTED from the rate limit or from a
process at capacity, or UNAVAILABLE) is retried a few times, never sooner than the hint and with
jitter up to half of it again, so that clients refused together do not come back together: safe
for every call here, since reads change nothing, an Ask is retried only before its first message,
and a repeated upload of the same bytes is deduplicated. Other errors arrive as
`grpc.aio.AioRpcError` with the server's status and message.
"""

from __future__ import annotations

import asyncio
import mimetypes
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from types import TracebackType
from typing import Any

import grpc
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt

from ragplatform.core.error_mapping import retry_after_from
from ragplatform.v1 import common_pb2, conversation_pb2, gateway_pb2, gateway_pb2_grpc, ingestion_pb2

UPLOAD_PIECE_BYTES = 1024 * 1024
MAX_RETRY_WAIT_SECONDS = 5.0
DEFAULT_RETRY_WAIT_SECONDS = 1.0
DEFAULT_RATE_LIMIT_RETRIES = 5
TERMINAL_STATES = (common_pb2.JOB_STATE_SUCCEEDED, common_pb2.JOB_STATE_FAILED)


def rate_limit_delay(exc: BaseException) -> float | None:
    """Seconds the gateway asked us to wait, or None when waiting will not help."""
    if not isinstance(exc, grpc.aio.AioRpcError):
        return None
    if exc.code() not in (grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.UNAVAILABLE):
        return None
    seconds = retry_after_from(exc.trailing_metadata())
    if seconds is None:
        # gRPC's own refusal of a flooded server ("Too many pending requests") carries no hint
        return DEFAULT_RETRY_WAIT_SECONDS if exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED else None
    # a daily quota names hours: that is not a wait for a client to sit through
    return seconds if seconds <= MAX_RETRY_WAIT_SECONDS else None


def jittered(delay: float) -> float:
    """Never sooner than the server said, and spread over half as long again."""
    return delay * random.uniform(1.0, 1.5)


def _wait_for_hint(state: RetryCallState) -> float:
    exc = state.outcome.exception() if state.outcome else None
    delay = rate_limit_delay(exc) if exc is not None else None
    return jittered(delay or 0.0)


def job_state_name(state: common_pb2.JobState.ValueType) -> str:
    return common_pb2.JobState.Name(state).removeprefix("JOB_STATE_")


class GatewayClient:
    def __init__(
        self, address: str, api_key: str, timeout: float = 60.0, rate_limit_retries: int = DEFAULT_RATE_LIMIT_RETRIES
    ) -> None:
        self._channel = grpc.aio.insecure_channel(address, options=[("grpc.max_receive_message_length", 8 << 20)])
        self._stub = gateway_pb2_grpc.GatewayServiceStub(self._channel)
        self._metadata = (("authorization", f"Bearer {api_key}"),) if api_key else ()
        self.timeout = timeout
        self.rate_limit_retries = rate_limit_retries

    async def __aenter__(self) -> GatewayClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        await self._channel.close()

    async def _with_retries(self, call: Callable[[], Awaitable[Any]]) -> Any:
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.rate_limit_retries + 1),
            retry=retry_if_exception(lambda exc: rate_limit_delay(exc) is not None),
            wait=_wait_for_hint,
            reraise=True,
        )

        async def attempt() -> Any:  # tenacity awaits only coroutine functions, not a lambda's call
            return await call()

        return await retrying(attempt)

    async def _unary(self, method: str, request: Any) -> Any:
        call = getattr(self._stub, method)
        return await self._with_retries(lambda: call(request, metadata=self._metadata, timeout=self.timeout))

    async def ask(
        self,
        question: str,
        conversation_id: str = "",
        top_k: int = 0,
        filters: dict[str, str] | None = None,
        timeout: float | None = None,
        model: str = "",
    ) -> AsyncIterator[gateway_pb2.AskResponse]:
        request = gateway_pb2.AskRequest(
            question=question, conversation_id=conversation_id, top_k=top_k, filters=filters or {}, model=model
        )
        for attempt in range(self.rate_limit_retries + 1):
            started = False
            try:
                async for message in self._stub.Ask(request, metadata=self._metadata, timeout=timeout or self.timeout):
                    started = True
                    yield message
                return
            except grpc.aio.AioRpcError as exc:
                delay = rate_limit_delay(exc)
                if started or delay is None or attempt == self.rate_limit_retries:
                    raise
                await asyncio.sleep(jittered(delay))

    async def search(
        self, query: str, top_k: int = 0, filters: dict[str, str] | None = None
    ) -> gateway_pb2.GatewaySearchResponse:
        request = gateway_pb2.GatewaySearchRequest(query=query, top_k=top_k, filters=filters or {})
        return await self._unary("Search", request)

    async def ingest_bytes(
        self, filename: str, data: bytes, content_type: str = "", metadata: dict[str, str] | None = None
    ) -> ingestion_pb2.UploadResponse:
        async def requests() -> AsyncIterator[gateway_pb2.IngestRequest]:
            header = gateway_pb2.IngestMetadata(filename=filename, content_type=content_type, metadata=metadata or {})
            yield gateway_pb2.IngestRequest(metadata=header)
            for start in range(0, len(data), UPLOAD_PIECE_BYTES):
                yield gateway_pb2.IngestRequest(chunk=data[start : start + UPLOAD_PIECE_BYTES])

        return await self._with_retries(
            lambda: self._stub.Ingest(requests(), metadata=self._metadata, timeout=self.timeout)
        )

    async def ingest_file(self, path: Path, metadata: dict[str, str] | None = None) -> ingestion_pb2.UploadResponse:
        content_type = mimetypes.guess_type(path.name)[0] or ""
        return await self.ingest_bytes(path.name, path.read_bytes(), content_type, metadata)

    async def get_job(self, job_id: str) -> common_pb2.Job:
        return await self._unary("GetJob", gateway_pb2.GatewayGetJobRequest(job_id=job_id))

    async def list_jobs(
        self,
        state: common_pb2.JobState.ValueType = common_pb2.JOB_STATE_UNSPECIFIED,
        page_size: int = 50,
        page_token: str = "",
    ) -> ingestion_pb2.ListJobsResponse:
        request = gateway_pb2.GatewayListJobsRequest(state=state, page_size=page_size, page_token=page_token)
        return await self._unary("ListJobs", request)

    async def find_jobs(self, job_ids: set[str]) -> dict[str, common_pb2.Job]:
        """The named jobs, read from the newest pages of ListJobs: one call per 500 jobs rather
        than one per job, so waiting on many uploads stays far below the rate limit."""
        found: dict[str, common_pb2.Job] = {}
        token = ""
        while True:
            page = await self.list_jobs(page_size=500, page_token=token)
            found.update((job.job_id, job) for job in page.jobs if job.job_id in job_ids)
            if len(found) == len(job_ids) or not page.next_page_token:
                return found
            token = page.next_page_token

    async def list_documents(self, page_size: int = 50, page_token: str = "") -> ingestion_pb2.ListDocumentsResponse:
        request = gateway_pb2.GatewayListDocumentsRequest(page_size=page_size, page_token=page_token)
        return await self._unary("ListDocuments", request)

    async def delete_document(self, document_id: str) -> ingestion_pb2.DeleteDocumentResponse:
        return await self._unary("DeleteDocument", gateway_pb2.GatewayDeleteDocumentRequest(document_id=document_id))

    async def list_conversations(self, page_size: int = 50) -> conversation_pb2.ListConversationsResponse:
        return await self._unary("ListConversations", gateway_pb2.GatewayListConversationsRequest(page_size=page_size))

    async def get_conversation(self, conversation_id: str) -> conversation_pb2.GetHistoryResponse:
        request = gateway_pb2.GatewayGetConversationRequest(conversation_id=conversation_id)
        return await self._unary("GetConversation", request)
