"""Open the blob store RAG_BLOB_URL names: a local directory (empty, or `file:///DIR`) or S3
(`s3://BUCKET[/PREFIX]`, imported only when chosen)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlparse

from ragplatform.backends.blobs.base import BlobStore
from ragplatform.core.settings import BlobSettings
from ragplatform.domain.errors import FailedPrecondition


def local_blob_dir(settings: BlobSettings) -> Path | None:
    """The directory of a local blob store, or None when RAG_BLOB_URL names a remote one."""
    url = settings.blob_url
    if not url:
        return settings.data_dir / "blobs"
    if not url.startswith("file:"):
        return None
    parsed = urlparse(url)
    if parsed.netloc not in ("", "localhost") or not parsed.path:
        raise FailedPrecondition(
            f"RAG_BLOB_URL={url!r} is not a local directory URL: write file:///ABSOLUTE/DIR "
            "(three slashes), or leave it empty to use RAG_DATA_DIR/blobs."
        )
    return Path(unquote(parsed.path))


async def open_blob_store(settings: BlobSettings) -> BlobStore:
    """The configured blob store, opened (the local directory is created if missing)."""
    directory = local_blob_dir(settings)
    store: BlobStore
    if directory is not None:
        from ragplatform.backends.blobs.local import LocalBlobStore

        store = LocalBlobStore(directory)
    elif settings.blob_url.startswith("s3://"):
        from ragplatform.backends.blobs.s3 import S3BlobStore

        store = S3BlobStore(settings)
    else:
        raise FailedPrecondition(
            f"RAG_BLOB_URL={settings.blob_url!r} has an unknown scheme: use file:///DIR, "
            "s3://BUCKET[/PREFIX], or leave it empty for RAG_DATA_DIR/blobs."
        )
    await store.open()
    return store
