"""The local-directory blob store, on a real temporary directory."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from ragplatform.backends.blobs.base import blob_key
from ragplatform.backends.blobs.factory import local_blob_dir, open_blob_store
from ragplatform.backends.blobs.local import LocalBlobStore, validate_key
from ragplatform.core.settings import BlobSettings, load_settings
from ragplatform.domain.errors import FailedPrecondition, InvalidArgument, NotFound


class CountingReader(io.BytesIO):
    """A file object that records the largest single read: proves the copy is streamed."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.largest_read = 0

    def read(self, size: int | None = -1, /) -> bytes:
        chunk = super().read(size)
        self.largest_read = max(self.largest_read, len(chunk))
        return chunk


@pytest.fixture
async def blobs(tmp_path: Path) -> AsyncIterator[LocalBlobStore]:
    store = LocalBlobStore(tmp_path / "blobs")
    await store.open()
    yield store
    await store.close()


async def test_put_get_exists_delete_round_trip(blobs: LocalBlobStore) -> None:
    key = blob_key("tenant-a", "ab" + "0" * 62)
    assert not await blobs.exists(key)
    await blobs.put(key, io.BytesIO(b"hello"), 5)
    assert await blobs.exists(key)
    assert await blobs.get(key) == b"hello"
    assert (blobs.root / key).read_bytes() == b"hello"
    await blobs.delete(key)
    assert not await blobs.exists(key)
    await blobs.delete(key)  # idempotent


async def test_put_streams_large_files_and_overwrites_atomically(blobs: LocalBlobStore) -> None:
    data = bytes(range(256)) * 20_000  # 5 MB
    reader = CountingReader(data)
    await blobs.put("k/big", reader, len(data))
    assert reader.largest_read < len(data)
    assert await blobs.get("k/big") == data
    await blobs.put("k/big", io.BytesIO(b"v2"), 2)
    assert await blobs.get("k/big") == b"v2"
    assert sorted(p.name for p in (blobs.root / "k").iterdir()) == ["big"]  # no temp file left


async def test_a_short_upload_stores_nothing(blobs: LocalBlobStore) -> None:
    await blobs.put("k/x", io.BytesIO(b"old"), 3)
    with pytest.raises(InvalidArgument, match="held 3 bytes but 10 were announced"):
        await blobs.put("k/x", io.BytesIO(b"new"), 10)
    assert await blobs.get("k/x") == b"old"
    assert sorted(p.name for p in (blobs.root / "k").iterdir()) == ["x"]


async def test_get_of_a_missing_key_is_not_found(blobs: LocalBlobStore) -> None:
    with pytest.raises(NotFound, match="no blob stored under 'tenants/t/none'"):
        await blobs.get("tenants/t/none")


@pytest.mark.parametrize(
    "key",
    ["", "../escape", "a/../../escape", "/etc/passwd", "a//b", "a/./b", "a/.hidden", "a\\b", "a/b c", "é"],
)
async def test_keys_that_could_escape_the_directory_are_refused(blobs: LocalBlobStore, key: str) -> None:
    with pytest.raises(InvalidArgument, match="invalid blob key"):
        await blobs.put(key, io.BytesIO(b"x"), 1)
    with pytest.raises(InvalidArgument):
        await blobs.get(key)
    assert list(blobs.root.parent.iterdir()) == [blobs.root]


def test_real_keys_are_valid() -> None:
    key = blob_key("tenant_1-x", "f" * 64)
    assert validate_key(key) == key


async def test_factory_uses_the_data_dir_or_a_file_url(tmp_path: Path) -> None:
    default = load_settings(BlobSettings, data_dir=tmp_path, blob_url="")
    assert local_blob_dir(default) == tmp_path / "blobs"
    store = await open_blob_store(default)
    assert isinstance(store, LocalBlobStore)
    assert (tmp_path / "blobs").is_dir()

    explicit = load_settings(BlobSettings, data_dir=tmp_path, blob_url=f"file://{tmp_path}/other%20dir")
    assert local_blob_dir(explicit) == tmp_path / "other dir"
    assert local_blob_dir(load_settings(BlobSettings, blob_url="s3://bucket/prefix")) is None

    with pytest.raises(FailedPrecondition, match="three slashes"):
        local_blob_dir(load_settings(BlobSettings, blob_url="file://relative/dir"))
    with pytest.raises(FailedPrecondition, match="unknown scheme"):
        await open_blob_store(load_settings(BlobSettings, blob_url="ftp://host/dir"))
