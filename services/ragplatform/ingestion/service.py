"""Ingestion rules, independent of gRPC: accept uploads, record documents and jobs, enqueue."""

from __future__ import annotations

import unicodedata
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import structlog

from ragplatform.backends.blobs.base import BlobStore, blob_key
from ragplatform.backends.queue.base import JobQueue
from ragplatform.backends.store.base import Store
from ragplatform.core.tracing import inject_trace_context
from ragplatform.domain.content_types import detect_content_type, shown
from ragplatform.domain.errors import InvalidArgument, RagError, Unavailable
from ragplatform.domain.models import Document, Job, JobState, NewUpload, Page, UploadOutcome
from ragplatform.domain.page_tokens import PageTokens, page_token_key
from ragplatform.domain.paging import clamp_page_size
from ragplatform.ingestion.upload import spool

log = structlog.get_logger("ragplatform.ingestion")

MAX_FILENAME_CHARS = 255
# Uploads up to this size are stored without asking the object store whether they exist.
PUT_WITHOUT_LOOKUP_BYTES = 256 * 1024
MAX_METADATA_ENTRIES = 32
MAX_METADATA_CHARS = 256
# Bidirectional-text controls: they make a name display as something else ("exe.txt" as "txt.exe").
_INVISIBLE_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")

# Removes a document's chunks from the vector store (the retrieval service owns it).
DeleteChunks = Callable[[str, str], Awaitable[None]]


@dataclass(frozen=True)
class UploadHeader:
    tenant_id: str
    filename: str
    content_type: str
    metadata: dict[str, str]


def validate_header(header: UploadHeader) -> UploadHeader:
    """Check everything knowable before a byte is read; return it with the content type resolved."""
    if not header.tenant_id:
        raise InvalidArgument("tenant_id is required")
    filename = header.filename.strip()
    if not filename:
        raise InvalidArgument("filename is required: it names the document in citations")
    if len(filename) > MAX_FILENAME_CHARS or "/" in filename or "\\" in filename:
        raise InvalidArgument(
            f"filename {shown(filename, 60)!r} is not a plain file name (no slashes, at most "
            f"{MAX_FILENAME_CHARS} characters)"
        )
    if any(ch in _INVISIBLE_CONTROLS or unicodedata.category(ch) == "Cc" for ch in filename):
        raise InvalidArgument(
            f"filename {shown(filename, 60)!r} contains control characters (newlines, tabs, terminal escapes or "
            "text-direction overrides); rename the file with printable characters only"
        )
    if len(header.metadata) > MAX_METADATA_ENTRIES:
        raise InvalidArgument(f"at most {MAX_METADATA_ENTRIES} metadata labels are allowed")
    for key, value in header.metadata.items():
        if not key or len(key) > MAX_METADATA_CHARS or len(value) > MAX_METADATA_CHARS:
            raise InvalidArgument(
                f"metadata label {key[:40]!r} is invalid: keys must be non-empty and keys and values at most "
                f"{MAX_METADATA_CHARS} characters"
            )
    content_type = detect_content_type(filename, header.content_type)
    return UploadHeader(header.tenant_id, filename, content_type, dict(header.metadata))


class IngestionService:
    def __init__(
        self,
        store: Store,
        blobs: BlobStore,
        queue: JobQueue,
        delete_chunks: DeleteChunks,
        max_upload_bytes: int,
        page_tokens: PageTokens | None = None,
        queue_payload_max_bytes: int = 0,
    ) -> None:
        self._store = store
        self._blobs = blobs
        self._queue = queue
        self._delete_chunks = delete_chunks
        self._max_upload_bytes = max_upload_bytes
        self._tokens = page_tokens or PageTokens(page_token_key(None))
        # Uploads up to this size also travel with their queue message: the worker need not read
        # the blob back (RAG_QUEUE_PAYLOAD_MAX_KB).
        self._queue_payload_max_bytes = queue_payload_max_bytes

    async def upload(self, header: UploadHeader, chunks: AsyncIterator[bytes]) -> UploadOutcome:
        header = validate_header(header)
        spooled = await spool(chunks, header.filename, self._max_upload_bytes)
        payload = b""
        try:
            if spooled.size <= self._queue_payload_max_bytes:
                payload = spooled.file.read()
                spooled.file.seek(0)
            key = blob_key(header.tenant_id, spooled.content_hash)
            # The key is derived from the content, so storing it again writes the same bytes: a
            # small upload is put at once (one object-store round trip instead of two); a large
            # one is looked up first, so that uploading it again transfers nothing.
            if spooled.size <= PUT_WITHOUT_LOOKUP_BYTES or not await self._blobs.exists(key):
                await self._blobs.put(key, spooled.file, spooled.size)
        finally:
            spooled.file.close()
        outcome = await self._store.record_upload(
            NewUpload(
                tenant_id=header.tenant_id,
                filename=header.filename,
                content_type=header.content_type,
                content_hash=spooled.content_hash,
                size_bytes=spooled.size,
                blob_key=key,
                metadata=header.metadata,
            )
        )
        if outcome.deduplicated:
            log.info("upload deduplicated", document_id=outcome.document.document_id, job_id=outcome.job.job_id)
            return outcome
        try:
            await self._queue.enqueue(outcome.job.job_id, header.tenant_id, inject_trace_context(), payload)
        except RagError as exc:
            # The job must not sit QUEUED with no message behind it: fail it with a reason.
            await self._store.fail_job(
                outcome.job.job_id, f"the job could not be queued ({exc.message}); upload the file again"
            )
            raise Unavailable(f"the ingestion queue is unavailable ({exc.message}); retry the upload") from exc
        log.info("upload queued", document_id=outcome.document.document_id, job_id=outcome.job.job_id)
        return outcome

    async def get_job(self, tenant_id: str, job_id: str) -> Job:
        if not job_id:
            raise InvalidArgument("job_id is required")
        return await self._store.get_job(_tenant(tenant_id), job_id)

    async def list_jobs(self, tenant_id: str, state: JobState | None, page_size: int, page_token: str) -> Page[Job]:
        tenant, size = _tenant(tenant_id), clamp_page_size(page_size)
        return await self._tokens.page(
            page_token, f"jobs/{tenant}", lambda cursor: self._store.list_jobs(tenant, state, size, cursor)
        )

    async def list_documents(self, tenant_id: str, page_size: int, page_token: str) -> Page[Document]:
        tenant, size = _tenant(tenant_id), clamp_page_size(page_size)
        return await self._tokens.page(
            page_token, f"documents/{tenant}", lambda cursor: self._store.list_documents(tenant, size, cursor)
        )

    async def delete_document(self, tenant_id: str, document_id: str) -> Document:
        if not document_id:
            raise InvalidArgument("document_id is required")
        document = await self._store.get_document(_tenant(tenant_id), document_id)
        # Chunks first: from this moment no answer can cite the document.
        await self._delete_chunks(tenant_id, document_id)
        deleted = await self._store.delete_document(tenant_id, document_id)
        await self._blobs.delete(document.blob_key)
        log.info("document deleted", document_id=document_id)
        return deleted


def _tenant(tenant_id: str) -> str:
    if not tenant_id:
        raise InvalidArgument("tenant_id is required")
    return tenant_id
