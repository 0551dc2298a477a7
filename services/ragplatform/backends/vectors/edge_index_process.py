"""Starting the processes of an index build (`edge_index_build.py`) and reading their answer."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any

from ragplatform.backends.vectors.edge_writes import EdgeWrite

_MODULE = "ragplatform.backends.vectors.edge_index_build"


class IndexBuildFailed(Exception):
    """A build process failed or was stopped; the live store is untouched."""


def start_build(staging: Path, niceness: int) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", _MODULE, "build", str(staging), str(niceness)]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def finish(process: subprocess.Popen[bytes], stdin: bytes | None = None) -> dict[str, Any]:
    """Wait for the process; its JSON answer, or `IndexBuildFailed` with the end of its stderr."""
    out, err = process.communicate(stdin)
    if process.returncode != 0:
        tail = err.decode(errors="replace").strip()[-500:]
        raise IndexBuildFailed(f"the index build process exited with {process.returncode}: {tail}")
    lines = out.decode().strip().splitlines()
    answer: dict[str, Any] = json.loads(lines[-1]) if lines else {}
    return answer


def replay(staging: Path, writes: list[EdgeWrite]) -> int:
    """Apply `writes` to the copy in `staging` (in a process: see `edge_index_build.py`)."""
    command = [sys.executable, "-m", _MODULE, "replay", str(staging)]
    process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    return int(finish(process, pickle.dumps(writes))["replayed"])
