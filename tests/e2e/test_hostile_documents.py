"""Hostile documents against the platform as processes, with the default worker settings: a
60-page PDF bomb (each page a 70 MB compressed stream, 4 MB on the wire) and 100,000 nested
`<div>`s (1.1 MB) from one tenant must each FAIL with a reason within 30 s while the worker
(and its parser processes) grow by less than 500 MB, and another tenant's one-line upload,
sent right behind them, must succeed within 5 s."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ragplatform.client import TERMINAL_STATES, GatewayClient
from ragplatform.domain.parsers.limits import MIB
from ragplatform.v1 import common_pb2
from tests.support.pdf_writer import build_decompression_bomb_pdf
from tests.support.platform_processes import PlatformProcesses

pytestmark = pytest.mark.e2e

NESTED_HTML = ("<html><body>" + "<div>" * 100_000 + "deep" + "</div>" * 100_000 + "</body></html>").encode()


def process_tree_rss_mb(pid: int) -> float:
    """Resident memory of a process and its children (the parser processes), in MB."""
    pids = [pid]
    # Children are listed under the thread that started them (the parser processes start on
    # worker threads), so every thread's list counts.
    for children in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            pids += [int(child) for child in children.read_text().split()]
        except FileNotFoundError:  # the thread ended meanwhile
            continue
    total_kb = 0
    for each in pids:
        try:
            for line in Path(f"/proc/{each}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total_kb += int(line.split()[1])
        except FileNotFoundError:  # a parser process replaced meanwhile
            continue
    return total_kb / 1024


class PeakMemory:
    """Samples a process tree's resident memory every 20 ms on a thread."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.baseline = process_tree_rss_mb(pid)
        self.peak = self.baseline
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, process_tree_rss_mb(self.pid))

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PlatformProcesses]:
    processes = PlatformProcesses(tmp_path_factory.mktemp("hostile"), extra_env={"RAG_MAX_UPLOAD_BYTES": str(8 * MIB)})
    try:
        processes.start_all()
        yield processes
    finally:
        processes.stop_all()


async def finished(client: GatewayClient, job_id: str, timeout: float) -> tuple[common_pb2.Job, float]:
    """The job once terminal, and when it got there (time.monotonic())."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = await client.get_job(job_id)
        if job.state in TERMINAL_STATES:
            return job, time.monotonic()
        await asyncio.sleep(0.05)
    raise AssertionError(f"job {job_id} not finished within {timeout:.0f} s")


def test_hostile_documents_fail_fast_and_hold_up_no_one(platform: PlatformProcesses) -> None:
    bomb = build_decompression_bomb_pdf(pages=60, expanded_bytes_per_page=70 * MIB)
    mallory, alice = platform.create_api_key("mallory"), platform.create_api_key("alice")

    async def scenario() -> dict[str, tuple[common_pb2.Job, float]]:
        async with (
            GatewayClient(platform.gateway, mallory, timeout=60) as hostile,
            GatewayClient(platform.gateway, alice, timeout=60) as honest,
        ):
            sent = time.monotonic()
            bomb_job = (await hostile.ingest_bytes("bomb.pdf", bomb)).job.job_id
            html_job = (await hostile.ingest_bytes("deep.html", NESTED_HTML)).job.job_id
            alice_sent = time.monotonic()
            note_job = (await honest.ingest_bytes("note.txt", b"The ferry leaves at nine.")).job.job_id
            results = await asyncio.gather(
                finished(hostile, bomb_job, 60), finished(hostile, html_job, 60), finished(honest, note_job, 60)
            )
            return {
                "bomb": (results[0][0], results[0][1] - sent),
                "html": (results[1][0], results[1][1] - sent),
                "note": (results[2][0], results[2][1] - alice_sent),
            }

    with PeakMemory(platform.pid("ingestion-worker")) as memory:
        outcome = asyncio.run(scenario())
    bomb_job, bomb_seconds = outcome["bomb"]
    html_job, html_seconds = outcome["html"]
    note_job, note_seconds = outcome["note"]
    print(
        f"bomb FAILED in {bomb_seconds:.1f} s, nested HTML in {html_seconds:.1f} s, other tenant's upload "
        f"SUCCEEDED in {note_seconds:.1f} s; worker + parsers {memory.baseline:.0f} -> peak {memory.peak:.0f} MB"
    )
    assert bomb_job.state == common_pb2.JOB_STATE_FAILED
    assert "RAG_PARSE_MAX_CONTENT_MB" in bomb_job.error
    assert "gave up" not in bomb_job.error
    assert html_job.state == common_pb2.JOB_STATE_FAILED
    assert "levels deep" in html_job.error
    assert bomb_seconds <= 30
    assert html_seconds <= 30
    assert note_job.state == common_pb2.JOB_STATE_SUCCEEDED
    assert note_seconds <= 5, f"another tenant's one-line upload waited {note_seconds:.1f} s"
    assert memory.peak - memory.baseline < 500, f"the worker grew by {memory.peak - memory.baseline:.0f} MB"
