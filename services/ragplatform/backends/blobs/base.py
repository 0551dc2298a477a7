"""Object storage for uploaded files. Adapters: `local.py` (a directory), `s3.py` (aioboto3)."""

from __future__ import annotations

from typing import BinaryIO, Protocol


def blob_key(tenant_id: str, content_hash: str) -> str:
    """Keys are derived from tenant and content: identical uploads share one object."""
    return f"tenants/{tenant_id}/blobs/{content_hash[:2]}/{content_hash}"


class BlobStore(Protocol):
    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def put(self, key: str, data: BinaryIO, size: int) -> None:
        """Store the readable file object's bytes under key (streamed, not read whole)."""

    async def get(self, key: str) -> bytes:
        """Raise `NotFound` if missing."""

    async def delete(self, key: str) -> None:
        """Idempotent."""

    async def exists(self, key: str) -> bool: ...
