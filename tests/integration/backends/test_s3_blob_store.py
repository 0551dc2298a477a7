"""S3BlobStore against moto's S3 server (a real HTTP S3 API in a separate process)."""

from __future__ import annotations

import io
import os
from collections.abc import AsyncIterator
from typing import Any

import pytest

from ragplatform.backends.blobs.factory import open_blob_store
from ragplatform.backends.blobs.s3 import PART_BYTES, S3BlobStore
from ragplatform.core.settings import BlobSettings, load_settings
from ragplatform.domain.errors import FailedPrecondition, InvalidArgument, NotFound, Unavailable
from tests.support.servers import (
    MOTO_ACCESS_KEY_ID,
    MOTO_REGION,
    MOTO_SECRET_ACCESS_KEY,
    MotoS3Server,
    free_port,
    unique_name,
)


def s3_settings(endpoint: str, blob_url: str) -> BlobSettings:
    return load_settings(
        BlobSettings,
        blob_url=blob_url,
        s3_endpoint_url=endpoint,
        s3_region=MOTO_REGION,
        s3_access_key_id=MOTO_ACCESS_KEY_ID,
        s3_secret_access_key=MOTO_SECRET_ACCESS_KEY,
    )


def object_keys(s3_admin: Any, bucket: str) -> list[str]:
    listed = s3_admin.list_objects_v2(Bucket=bucket).get("Contents", [])
    uploads = s3_admin.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    return [o["Key"] for o in listed] + [f"(unfinished multipart) {u['Key']}" for u in uploads]


@pytest.fixture
async def blobs(moto_s3_server: MotoS3Server, s3_bucket: str) -> AsyncIterator[S3BlobStore]:
    store = await open_blob_store(s3_settings(moto_s3_server.endpoint_url, f"s3://{s3_bucket}/uploads"))
    assert isinstance(store, S3BlobStore)
    try:
        yield store
    finally:
        await store.close()


async def test_put_get_exists_delete_round_trip_under_the_prefix(
    blobs: S3BlobStore, s3_admin: Any, s3_bucket: str
) -> None:
    key = "tenants/t1/blobs/ab/abcdef"
    assert not await blobs.exists(key)
    await blobs.put(key, io.BytesIO(b"hello, object storage"), 21)

    assert await blobs.exists(key)
    assert await blobs.get(key) == b"hello, object storage"
    assert object_keys(s3_admin, s3_bucket) == [f"uploads/{key}"]

    await blobs.delete(key)
    await blobs.delete(key)  # idempotent
    assert not await blobs.exists(key)
    with pytest.raises(NotFound, match="upload the document again"):
        await blobs.get(key)


async def test_a_large_file_goes_up_as_a_multipart_upload(blobs: S3BlobStore, s3_admin: Any, s3_bucket: str) -> None:
    data = os.urandom(PART_BYTES * 2 + 12345)  # three parts
    await blobs.put("big", io.BytesIO(data), len(data))
    assert await blobs.get("big") == data
    assert object_keys(s3_admin, s3_bucket) == ["uploads/big"]


@pytest.mark.parametrize("announced_delta", [-1, 1])
@pytest.mark.parametrize("length", [100, PART_BYTES + 100])
async def test_a_stream_of_another_size_than_announced_stores_nothing(
    blobs: S3BlobStore, s3_admin: Any, s3_bucket: str, length: int, announced_delta: int
) -> None:
    with pytest.raises(InvalidArgument, match="send it again"):
        await blobs.put("short", io.BytesIO(b"x" * length), length + announced_delta)
    assert object_keys(s3_admin, s3_bucket) == []


async def test_a_missing_bucket_is_a_failed_precondition_unless_creation_is_asked_for(
    moto_s3_server: MotoS3Server, s3_admin: Any
) -> None:
    bucket = unique_name("missing-")
    settings = s3_settings(moto_s3_server.endpoint_url, f"s3://{bucket}")
    with pytest.raises(FailedPrecondition, match=f"bucket '{bucket}' does not exist"):
        await open_blob_store(settings)

    store = S3BlobStore(settings, create_bucket=True)
    await store.open()
    try:
        await store.put("k", io.BytesIO(b"v"), 1)
        assert object_keys(s3_admin, bucket) == ["k"]
    finally:
        await store.close()


async def test_an_unreachable_endpoint_is_unavailable_with_what_to_check() -> None:
    store = S3BlobStore(s3_settings(f"http://127.0.0.1:{free_port()}", "s3://nowhere"))
    with pytest.raises(Unavailable, match="RAG_S3_ENDPOINT_URL"):
        await store.open()


async def test_s3_restarted_calls_fail_then_recover(
    blobs: S3BlobStore, moto_s3_server: MotoS3Server, s3_admin: Any
) -> None:
    """moto keeps buckets in memory, so after its restart the bucket is gone: the same store
    object reports that clearly instead of hanging, and works again once the bucket exists."""
    moto_s3_server.stop()
    try:
        with pytest.raises(Unavailable):
            await blobs.exists("k")
    finally:
        moto_s3_server.start()
    with pytest.raises(FailedPrecondition, match="does not exist"):
        await blobs.put("k", io.BytesIO(b"v"), 1)
    s3_admin.create_bucket(Bucket=blobs.bucket)
    await blobs.put("k", io.BytesIO(b"v"), 1)
    assert await blobs.get("k") == b"v"
