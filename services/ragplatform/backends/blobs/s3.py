"""Blobs in any S3-compatible object store (AWS S3, MinIO, Ceph, moto...), through aioboto3.

RAG_BLOB_URL=s3://BUCKET[/PREFIX] names the bucket and a key prefix; RAG_S3_ENDPOINT_URL,
RAG_S3_REGION, RAG_S3_ACCESS_KEY_ID and RAG_S3_SECRET_ACCESS_KEY say where and as whom (empty
credentials: the AWS default chain, e.g. an IAM role for the pod's service account).

Callers may rely on:
* `put` streams: the file object is read in 8 MiB parts in a worker thread; anything larger than
  one part goes up as a multipart upload, so memory stays bounded whatever the file size. If the
  stream holds another number of bytes than announced, nothing is stored and `InvalidArgument`
  is raised (a multipart upload is aborted, never left half-done).
* The bucket must exist: `open()` checks it and raises `FailedPrecondition` naming it, unless the
  store was built with `create_bucket=True` (tests, `ragplatform dev`-like setups). Services do
  not create buckets: in production that is an infrastructure decision (region, policy,
  encryption, lifecycle) that a service silently making one would get wrong.
* Unreachable endpoint, timeouts and 5xx answers raise `Unavailable`; a missing key `NotFound`;
  refused credentials `FailedPrecondition` naming the variables to check.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any, BinaryIO
from urllib.parse import urlparse

import aioboto3
from aiobotocore.config import AioConfig  # type: ignore[import-untyped]
from botocore.exceptions import BotoCoreError, ClientError

from ragplatform.core.redaction import redact_url
from ragplatform.core.settings import BlobSettings
from ragplatform.domain.errors import FailedPrecondition, InvalidArgument, NotFound, Unavailable

PART_BYTES = 8 * 1024 * 1024  # above S3's 5 MiB minimum part size
_NOT_FOUND_CODES = {"404", "NoSuchKey", "NotFound"}
_BUCKET_MISSING_CODES = {"NoSuchBucket"}
_CREDENTIAL_CODES = {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "403", "ExpiredToken"}


def parse_blob_url(url: str) -> tuple[str, str]:
    """(bucket, prefix) of s3://BUCKET[/PREFIX]; the prefix has no leading or trailing slash."""
    parsed = urlparse(url)
    if parsed.scheme != "s3" or not parsed.netloc:
        raise FailedPrecondition(f"RAG_BLOB_URL={url!r} is not an S3 URL: write s3://BUCKET or s3://BUCKET/PREFIX")
    return parsed.netloc, parsed.path.strip("/")


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _status(exc: ClientError) -> int:
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)


class S3BlobStore:
    """`BlobStore` on S3. Construct, then `await open()` (the factory does both)."""

    def __init__(self, settings: BlobSettings, *, create_bucket: bool = False) -> None:
        self.bucket, self.prefix = parse_blob_url(settings.blob_url)
        self._endpoint = settings.s3_endpoint_url or None
        self._region = settings.s3_region
        self._access_key = settings.s3_access_key_id.get_secret_value() if settings.s3_access_key_id else None
        self._secret_key = settings.s3_secret_access_key.get_secret_value() if settings.s3_secret_access_key else None
        self._create_bucket = create_bucket
        self._stack: AsyncExitStack | None = None
        self._client: Any = None

    def object_key(self, key: str) -> str:
        """The S3 object key of a blob key (the prefix joined on)."""
        return f"{self.prefix}/{key}" if self.prefix else key

    # --- lifecycle ---------------------------------------------------------------------------
    async def open(self) -> None:
        if self._client is not None:
            return
        stack = AsyncExitStack()
        config = AioConfig(
            connect_timeout=5,
            read_timeout=60,
            retries={"max_attempts": 3, "mode": "standard"},
            # Path-style addressing for custom endpoints: MinIO and most S3-compatible stores
            # do not serve bucket subdomains.
            s3={"addressing_style": "path" if self._endpoint else "auto"},
        )
        session = aioboto3.Session()
        self._client = await stack.enter_async_context(
            session.client(
                "s3",
                endpoint_url=self._endpoint,
                region_name=self._region,
                aws_access_key_id=self._access_key,
                aws_secret_access_key=self._secret_key,
                config=config,
            )
        )
        self._stack = stack
        try:
            await self._ensure_bucket()
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        stack, self._stack, self._client = self._stack, None, None
        if stack is not None:
            await stack.aclose()

    async def _ensure_bucket(self) -> None:
        try:
            async with self._errors("check the bucket"):
                await self._client.head_bucket(Bucket=self.bucket)
            return
        except (NotFound, FailedPrecondition):
            if not self._create_bucket:
                raise FailedPrecondition(
                    f"the S3 bucket {self.bucket!r} does not exist at {self._where()}; create it (for example "
                    f"`aws s3 mb s3://{self.bucket}`) or fix RAG_BLOB_URL / RAG_S3_ENDPOINT_URL"
                ) from None
        async with self._errors("create the bucket"):
            try:
                if self._region and self._region != "us-east-1":
                    await self._client.create_bucket(
                        Bucket=self.bucket, CreateBucketConfiguration={"LocationConstraint": self._region}
                    )
                else:
                    await self._client.create_bucket(Bucket=self.bucket)
            except ClientError as exc:
                if _error_code(exc) not in {"BucketAlreadyOwnedByYou", "BucketAlreadyExists"}:
                    raise

    def _where(self) -> str:
        return redact_url(self._endpoint) if self._endpoint else f"AWS S3 ({self._region})"

    @asynccontextmanager
    async def _errors(self, action: str, key: str = "") -> AsyncIterator[None]:
        """Map S3 and transport failures inside the block to domain errors."""
        if self._client is None:
            raise Unavailable("the S3 blob store is not open (or was closed); restart the service")
        try:
            yield
        except ClientError as exc:
            code, status = _error_code(exc), _status(exc)
            if code in _NOT_FOUND_CODES or (status == 404 and code not in _BUCKET_MISSING_CODES):
                raise NotFound(f"no blob stored under {key!r}; upload the document again") from exc
            if code in _BUCKET_MISSING_CODES:
                raise FailedPrecondition(
                    f"the S3 bucket {self.bucket!r} does not exist at {self._where()}; create it or fix RAG_BLOB_URL"
                ) from exc
            if code in _CREDENTIAL_CODES:
                raise FailedPrecondition(
                    f"S3 at {self._where()} refused to {action} ({code}); check RAG_S3_ACCESS_KEY_ID, "
                    "RAG_S3_SECRET_ACCESS_KEY and the bucket policy"
                ) from exc
            if status >= 500 or code in {"SlowDown", "ServiceUnavailable", "InternalError", "RequestTimeout"}:
                raise self._unavailable(action, exc) from exc
            raise
        except (BotoCoreError, OSError, TimeoutError) as exc:
            raise self._unavailable(action, exc) from exc

    def _unavailable(self, action: str, exc: BaseException) -> Unavailable:
        return Unavailable(
            f"S3 at {self._where()} could not {action} ({exc.__class__.__name__}: {exc}); check "
            "RAG_S3_ENDPOINT_URL and that the object store is running, then retry"
        )

    # --- blobs ---------------------------------------------------------------------------------
    async def put(self, key: str, data: BinaryIO, size: int) -> None:
        object_key = self.object_key(key)
        first = await asyncio.to_thread(data.read, PART_BYTES)
        if len(first) < PART_BYTES:
            _check_size(key, len(first), size)
            async with self._errors("store the upload", key):
                await self._client.put_object(Bucket=self.bucket, Key=object_key, Body=first)
            return
        await self._put_multipart(key, object_key, first, data, size)

    async def _put_multipart(self, key: str, object_key: str, first: bytes, data: BinaryIO, size: int) -> None:
        async with self._errors("start a multipart upload", key):
            upload = await self._client.create_multipart_upload(Bucket=self.bucket, Key=object_key)
        upload_id = upload["UploadId"]
        try:
            parts = []
            total, chunk, number = 0, first, 1
            while chunk:
                total += len(chunk)
                if total > size:
                    _check_size(key, total, size)
                async with self._errors("upload a part", key):
                    answer = await self._client.upload_part(
                        Bucket=self.bucket, Key=object_key, UploadId=upload_id, PartNumber=number, Body=chunk
                    )
                parts.append({"ETag": answer["ETag"], "PartNumber": number})
                number += 1
                chunk = await asyncio.to_thread(data.read, PART_BYTES)
            _check_size(key, total, size)
            async with self._errors("complete a multipart upload", key):
                await self._client.complete_multipart_upload(
                    Bucket=self.bucket, Key=object_key, UploadId=upload_id, MultipartUpload={"Parts": parts}
                )
        except BaseException:
            # Shielded: a cancelled upload must still not leave parts behind (they cost storage).
            await asyncio.shield(self._abort(object_key, upload_id))
            raise

    async def _abort(self, object_key: str, upload_id: str) -> None:
        # If even the abort fails, a bucket lifecycle rule for incomplete uploads is the backstop.
        with contextlib.suppress(ClientError, BotoCoreError, OSError):
            await self._client.abort_multipart_upload(Bucket=self.bucket, Key=object_key, UploadId=upload_id)

    async def get(self, key: str) -> bytes:
        """The blob's bytes, read from the response stream part by part."""
        async with self._errors("read a blob", key):
            answer = await self._client.get_object(Bucket=self.bucket, Key=self.object_key(key))
            body = answer["Body"]
            chunks = []
            try:
                while chunk := await body.read(PART_BYTES):
                    chunks.append(chunk)
            finally:
                body.close()
        return b"".join(chunks)

    async def delete(self, key: str) -> None:
        """Idempotent: deleting a missing key succeeds (S3 semantics)."""
        async with self._errors("delete a blob", key):
            await self._client.delete_object(Bucket=self.bucket, Key=self.object_key(key))

    async def exists(self, key: str) -> bool:
        try:
            async with self._errors("look up a blob", key):
                await self._client.head_object(Bucket=self.bucket, Key=self.object_key(key))
        except NotFound:
            return False
        return True


def _check_size(key: str, actual: int, announced: int) -> None:
    if actual != announced:
        raise InvalidArgument(
            f"the upload for {key} held {'more than ' if actual > announced else ''}{actual} bytes but "
            f"{announced} were announced; send it again"
        )
