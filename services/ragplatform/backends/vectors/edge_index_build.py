"""Build the HNSW index of a copy of an embedded store, in a process of its own.

    python -m ragplatform.backends.vectors.edge_index_build STORE_COPY [NICENESS]

Runs the engine's optimizers on the copy (with the index settings stored in its config), writes
the result to disk and prints one JSON line: {"optimized": bool, "seconds": float, "points": int,
"indexed_vectors": int}. Exit status 0 on success.

Why a process: `EdgeShard.optimize()` (qdrant-edge-py 0.9) holds Python's GIL for the whole build
(minutes at 100k chunks), which would freeze every other thread of the retrieval service,
searches included. Why a copy: the engine locks its write-ahead log, so only one process can
open a store; the live store keeps serving searches and writes while the copy is indexed.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import sys
import time

import qdrant_edge as qe


def build(path: str) -> dict[str, object]:
    shard = qe.EdgeShard.load(path)
    try:
        started = time.perf_counter()
        optimized = shard.optimize()
        shard.flush()
        info = shard.info()
        return {
            "optimized": bool(optimized),
            "seconds": round(time.perf_counter() - started, 3),
            "points": int(info.points_count),
            "indexed_vectors": int(info.indexed_vectors_count),
        }
    finally:
        shard.close()


def _die_with_parent() -> None:
    """Linux: be killed when the process that started the build dies, so that no orphan keeps
    writing into a copy the next open of the store discards. Best effort elsewhere."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGKILL)
    except (OSError, AttributeError):
        pass


def main(argv: list[str]) -> int:
    if len(argv) not in (2, 3):
        print(__doc__, file=sys.stderr)
        return 2
    parent = os.getppid()
    _die_with_parent()
    if os.getppid() != parent:
        return 1  # the parent died before the line above
    if len(argv) == 3:
        # Searches first: the build takes what CPU they leave.
        os.nice(int(argv[2]))
    print(json.dumps(build(argv[1])), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
