"""`ragplatform dev` as a user runs it: when a service cannot start, the command exits non-zero
with a message naming the cause (no traceback) and leaves no port bound."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.platform_processes import free_port_block

pytestmark = pytest.mark.e2e


def test_dev_exits_non_zero_when_a_service_cannot_bind(tmp_path: Path) -> None:
    base = free_port_block()
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", base + 4))  # the conversation service's port
        blocker.listen()
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "ragplatform",
                "dev",
                "--data-dir",
                str(tmp_path / "data"),
                "--port-base",
                str(base),
                "--metrics-base",
                "0",
            ],
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "RAG_EMBEDDER": "hashing", "RAG_LOG_LEVEL": "warning"},
        )
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert f"could not bind 127.0.0.1:{base + 4}" in " ".join(output.split())
    assert "Traceback" not in output
    with socket.socket() as probe:  # the services that had started released their ports
        probe.bind(("127.0.0.1", base + 2))
