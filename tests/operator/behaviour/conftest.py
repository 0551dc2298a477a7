"""Fixtures of the operator's behaviour tests: the API emulator, a real Redis, and kopf running.

kopf runs with the operator's real registry against `ApiServerEmulator` (kmock), only with
short intervals; the operator's own API calls go through the real `kubernetes` client to the
same emulator, and the queue depth comes from a real `redis-server` process.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator

import kmock
import pytest

from ragplatform_operator.config import OperatorConfig
from tests.operator.behaviour.emulator import ApiServerEmulator
from tests.operator.behaviour.harness import NAMESPACE, Cluster, OperatorThread, free_port


@pytest.fixture
def redis_url() -> Iterator[str]:
    """A real Redis server on a free loopback port, without persistence; stopped after the test."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed (apt-get install -y redis-server)")
    port = free_port()
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            break
        time.sleep(0.02)
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(timeout=5)


@pytest.fixture
async def emulator() -> AsyncIterator[ApiServerEmulator]:
    """The Kubernetes API emulator, serving on a loopback port, with the test namespace."""
    async with ApiServerEmulator() as emu, kmock.Server(emu):
        emu.declare_resources()
        emu.objects["v1/namespaces", None, NAMESPACE] = {"metadata": {"name": NAMESPACE}}
        yield emu


@pytest.fixture
def operator_config() -> OperatorConfig:
    """Short intervals so that repair and autoscaling happen within a test's few seconds."""
    return OperatorConfig(
        reconcile_interval_seconds=1.0,
        autoscale_tick_seconds=0.5,
        liveness_endpoint=None,
        log_format="plain",
    )


@pytest.fixture
async def cluster(emulator: ApiServerEmulator, operator_config: OperatorConfig) -> AsyncIterator[Cluster]:
    """kopf running the operator's handlers against the emulator; stopped cleanly afterwards."""
    running = await OperatorThread.start(str(emulator.url), operator_config)
    try:
        yield Cluster(emulator)
    finally:
        await running.stop()
