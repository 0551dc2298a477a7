"""The work on a copy of an embedded store that an index build does in processes of its own.

    python -m ragplatform.backends.vectors.edge_index_build build STORE_COPY [NICENESS]
    python -m ragplatform.backends.vectors.edge_index_build replay STORE_COPY < pickled writes

`build` runs the engine's optimizers on the copy (with the index settings stored in its config);
`replay` applies the writes the live store took meanwhile (a pickled list of `edge_writes`
values on stdin, written by the store itself). Both write the copy to disk and print one JSON line
(`build`: {"optimized", "seconds", "cpu_seconds", "points", "indexed_vectors"}; `replay`: {"replayed"}).

Why processes: qdrant-edge-py 0.9 holds Python's GIL in `optimize()` (minutes at 100k chunks)
and in `load`/`flush`/`close` (up to seconds), which would freeze every thread of the retrieval
service, searches included. Why a copy: the engine locks its write-ahead log, so only one process
can open a store; the live store keeps serving while the copy is worked on.
"""

from __future__ import annotations

import ctypes
import json
import os
import pickle
import resource
import signal
import sys
import time
from typing import Any

import qdrant_edge as qe

from ragplatform.backends.vectors.edge_writes import EdgeWrite, engine_operation


def build(path: str) -> dict[str, Any]:
    shard = qe.EdgeShard.load(path)
    try:
        started = time.perf_counter()
        optimized = shard.optimize()
        shard.flush()
        info = shard.info()
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return {
            "optimized": bool(optimized),
            "seconds": round(time.perf_counter() - started, 3),
            "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 3),
            "points": int(info.points_count),
            "indexed_vectors": int(info.indexed_vectors_count),
        }
    finally:
        shard.close()


def replay(path: str, writes: list[EdgeWrite]) -> dict[str, Any]:
    shard = qe.EdgeShard.load(path)
    try:
        for write in writes:
            shard.update(engine_operation(write))
        shard.flush()
    finally:
        shard.close()
    return {"replayed": len(writes)}


def _die_with_parent() -> None:
    """Linux: be killed when the process that started this one dies, so that no orphan keeps
    writing into a copy the next open of the store discards. Best effort elsewhere."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGKILL)
    except (OSError, AttributeError):
        pass


def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[1] not in ("build", "replay"):
        print(__doc__, file=sys.stderr)
        return 2
    parent = os.getppid()
    _die_with_parent()
    if os.getppid() != parent:
        return 1  # the parent died before the line above
    if argv[1] == "build":
        if len(argv) > 3:
            os.nice(int(argv[3]))  # searches first: the build takes what CPU they leave
        result = build(argv[2])
    else:
        # stdin is a pipe from the store that started this process, never outside input
        result = replay(argv[2], pickle.load(sys.stdin.buffer))  # noqa: S301
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
