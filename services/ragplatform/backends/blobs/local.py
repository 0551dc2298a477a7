"""Blobs as files in a local directory: the embedded default (RAG_DATA_DIR/blobs or file:///DIR).

Callers may rely on: a key maps to the file ROOT/KEY; `put` streams the file object to a
temporary file in the target directory and renames it into place (os.replace), so a reader sees
the old bytes or the new ones, never a half-written file, and a crash leaves at most a hidden
`.tmp-*` file behind; keys are validated before any path is built (segments of letters, digits
and `._-=+@`, none empty, none starting with a dot), so no key reaches outside ROOT. Every file
operation runs in a worker thread. Several processes may share the directory (rename is atomic).
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import BinaryIO

from ragplatform.domain.errors import InvalidArgument, NotFound

_SEGMENT = re.compile(r"[A-Za-z0-9_\-=+@][A-Za-z0-9._\-=+@]*")
_MAX_KEY_CHARS = 1024
_COPY_BUFFER = 1024 * 1024


def validate_key(key: str) -> str:
    """Return `key` if it is a safe relative blob key, else raise `InvalidArgument`."""
    segments = key.split("/")
    if not key or len(key) > _MAX_KEY_CHARS or not all(_SEGMENT.fullmatch(s) for s in segments):
        raise InvalidArgument(
            f"invalid blob key {key[:100]!r}: use 1-{_MAX_KEY_CHARS} characters in '/'-separated "
            "segments of letters, digits and ._-=+@, none empty and none starting with a dot."
        )
    return key


class LocalBlobStore:
    """`BlobStore` over the directory `root` (created on `open`)."""

    def __init__(self, root: Path) -> None:
        self._root = root.absolute()

    @property
    def root(self) -> Path:
        return self._root

    def _path(self, key: str) -> Path:
        path = self._root / validate_key(key)
        # The key rules already forbid escaping; this guards against a future loosening of them.
        if not path.resolve().is_relative_to(self._root.resolve()):
            raise InvalidArgument(f"invalid blob key {key[:100]!r}: it points outside the blob store.")
        return path

    async def open(self) -> None:
        await asyncio.to_thread(self._root.mkdir, parents=True, exist_ok=True)

    async def close(self) -> None:
        """Nothing to release: files are opened per call."""

    async def put(self, key: str, data: BinaryIO, size: int) -> None:
        """Store `size` bytes read from `data`; raise `InvalidArgument` (and store nothing) if the
        stream holds another number of bytes."""
        await asyncio.to_thread(self._put, self._path(key), data, size)

    def _put(self, path: Path, data: BinaryIO, size: int) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as tmp:
                shutil.copyfileobj(data, tmp, _COPY_BUFFER)
                written = tmp.tell()
                tmp.flush()
                os.fsync(tmp.fileno())
            if written != size:
                raise InvalidArgument(
                    f"the upload for {path.name} held {written} bytes but {size} were announced; send it again."
                )
            os.replace(tmp_name, path)
        except BaseException:
            Path(tmp_name).unlink(missing_ok=True)
            raise

    async def get(self, key: str) -> bytes:
        path = self._path(key)
        try:
            return await asyncio.to_thread(path.read_bytes)
        except (FileNotFoundError, IsADirectoryError):
            raise NotFound(f"no blob stored under {key!r}; upload the document again.") from None

    async def delete(self, key: str) -> None:
        await asyncio.to_thread(self._path(key).unlink, missing_ok=True)

    async def exists(self, key: str) -> bool:
        return await asyncio.to_thread(self._path(key).is_file)
