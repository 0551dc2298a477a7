"""The background HNSW build of the embedded store: when, and in which steps.

When: after writes have settled (no write for `settle_seconds`) and at least `threshold` chunks
have no index; also once at open, for a store that grew while indexing was off.

Steps (the live store keeps answering searches throughout, and accepts writes except during
steps 1 and 3):
1. the store is flushed and copied to `<store>.indexing`; from here on the store keeps a journal
   of the writes it applies;
2. a separate process (`edge_index_build.py`, niced) builds the index in the copy;
3. another process replays the journal into the copy, and the copy replaces the store
   (`edge_swap.py`); the store then opens the new copy, and closes the old one once the searches
   still running on it are done.
A build that fails, or a process that stops mid-build, loses nothing: the live store is untouched
until step 3, and a crash during step 3 is completed or undone at the next open.
"""

from __future__ import annotations

import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import structlog

from ragplatform.backends.vectors.edge_index import EdgeIndexSettings
from ragplatform.backends.vectors.edge_index_process import IndexBuildFailed, finish, start_build
from ragplatform.backends.vectors.edge_swap import SwapDirs, discard

log = structlog.get_logger("ragplatform.vectors.index")

#: The builder's nice value: searches on the same cores come first.
BUILD_NICENESS = 10


class IndexableStore(Protocol):
    def unindexed_chunks(self) -> int: ...

    def copy_for_build(self, staging: Path) -> None:
        """Flush, copy the store to `staging` and start journaling writes (writes wait meanwhile)."""

    def swap_in_build(self, dirs: SwapDirs) -> int:
        """Replay the journal into `dirs.staging` and make it the live store; return the number
        of writes replayed."""

    def abandon_build(self) -> None:
        """Stop journaling: the copy will not be used."""


@dataclass(frozen=True)
class IndexBuild:
    """One completed build, as `EdgeVectorStore.index_status` reports it."""

    copy_seconds: float
    build_seconds: float
    #: CPU time of the build process (its wall time depends on what else runs)
    build_cpu_seconds: float
    swap_seconds: float
    optimized: bool
    points: int
    #: writes that arrived during the build and were replayed into the new store
    replayed: int


class BackgroundIndexer:
    """One thread per store that starts builds (see the module docstring)."""

    def __init__(self, store: IndexableStore, dirs: SwapDirs, settings: EdgeIndexSettings) -> None:
        self._store = store
        self._dirs = dirs
        self._settings = settings
        self._cond = threading.Condition()
        self._writes = 0
        self._stopping = False
        self._child: subprocess.Popen[bytes] | None = None
        self._thread = threading.Thread(target=self._run, name=f"hnsw-index {dirs.store.name}", daemon=True)
        self.building = False
        self.builds: list[IndexBuild] = []
        self.last_error = ""

    def start(self) -> None:
        self._thread.start()

    def notify_write(self) -> None:
        with self._cond:
            self._writes += 1
            self._cond.notify_all()

    def stop(self) -> None:
        """Stop the thread; a build in progress is abandoned (its process killed, its copy removed)."""
        with self._cond:
            self._stopping = True
            if self._child is not None:
                self._child.kill()
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        seen = -1  # check once at start, even without writes
        while self._wait_for_settled_writes(seen):
            with self._cond:
                seen = self._writes
            try:
                if self._store.unindexed_chunks() >= self._settings.threshold:
                    self._build()
            except Exception as exc:  # keep the thread (and the store) alive; the next write retries
                self.last_error = str(exc)
                log.warning("vector_index_build_failed", store=str(self._dirs.store), error=str(exc))

    def _wait_for_settled_writes(self, seen: int) -> bool:
        """Wait until there are writes not yet considered and none for `settle_seconds`; False
        when stopping."""
        with self._cond:
            self._cond.wait_for(lambda: self._stopping or self._writes != seen)
            while not self._stopping:
                before = self._writes
                self._cond.wait(self._settings.settle_seconds)
                if self._writes == before:
                    break
            return not self._stopping

    def _build(self) -> None:
        staging = self._dirs.staging
        discard(staging)
        self.building = True
        started = time.perf_counter()
        try:
            self._store.copy_for_build(staging)
            copied = time.perf_counter()
            result = self._run_build_process(staging)
            built = time.perf_counter()
            with self._cond:
                if self._stopping:
                    raise IndexBuildFailed("the store is closing")
            replayed = self._store.swap_in_build(self._dirs)
        except BaseException:
            self._store.abandon_build()
            discard(staging)
            raise
        finally:
            self.building = False
        build = IndexBuild(
            copy_seconds=copied - started,
            build_seconds=built - copied,
            build_cpu_seconds=float(result.get("cpu_seconds", 0.0)),
            swap_seconds=time.perf_counter() - built,
            optimized=bool(result.get("optimized")),
            points=int(result.get("points", 0)),
            replayed=replayed,
        )
        self.builds.append(build)
        log.info("vector_index_built", store=str(self._dirs.store), **build.__dict__)

    def _run_build_process(self, staging: Path) -> dict[str, Any]:
        with self._cond:
            if self._stopping:
                raise IndexBuildFailed("the store is closing")
            child = self._child = start_build(staging, BUILD_NICENESS)
        try:
            return finish(child)
        finally:
            with self._cond:
                self._child = None
