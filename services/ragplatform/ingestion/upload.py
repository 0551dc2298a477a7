"""Receiving an upload: bounded size, hashed while it streams, spooled to disk past 1 MiB."""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import BinaryIO, cast

from ragplatform.domain.errors import InvalidArgument

SPOOL_IN_MEMORY_BYTES = 1024 * 1024


@dataclass
class SpooledUpload:
    file: BinaryIO
    size: int
    content_hash: str


def _human(n: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)


async def spool(chunks: AsyncIterator[bytes], filename: str, max_bytes: int) -> SpooledUpload:
    """Read every chunk, refusing as soon as the total passes `max_bytes` (nothing is stored)."""
    digest = hashlib.sha256()
    spooled = cast(BinaryIO, tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY_BYTES))  # noqa: SIM115
    size = 0
    try:
        async for chunk in chunks:
            size += len(chunk)
            if size > max_bytes:
                raise InvalidArgument(
                    f"{filename} is larger than the upload limit of {_human(max_bytes)}; "
                    "split it, or raise RAG_MAX_UPLOAD_BYTES on the ingestion service"
                )
            digest.update(chunk)
            spooled.write(chunk)
    except BaseException:
        spooled.close()
        raise
    if size == 0:
        spooled.close()
        raise InvalidArgument(f"{filename} is empty; there is nothing to ingest")
    spooled.seek(0)
    return SpooledUpload(file=spooled, size=size, content_hash=digest.hexdigest())
