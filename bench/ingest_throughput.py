"""Ingestion throughput: end-to-end chunks/s (gateway -> ingestion -> queue -> worker -> retrieval)
against the raw embedder's chunks/s, same machine, same run.

    python bench/ingest_throughput.py [--embedder minilm|hashing] [--documents 20] [--workers 1]

Prints both rates and their ratio (1.0 = the pipeline adds nothing over embedding).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ragplatform.backends.embedders.factory import make_embedder
from ragplatform.client import TERMINAL_STATES, GatewayClient
from ragplatform.core.settings import WorkerSettings, load_settings
from ragplatform.domain.chunking import chunk_text
from ragplatform.domain.parsing import parse_document
from tests.support.platform_processes import PlatformProcesses

CORPUS = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "docs" / "corpus"


def make_documents(count: int) -> list[tuple[str, bytes]]:
    """Distinct text documents built from the test corpus (distinct so none is deduplicated)."""
    base = "\n\n".join(p.read_text() for p in sorted(CORPUS.glob("*.md")) + sorted(CORPUS.glob("*.txt")))
    return [(f"doc-{i}.md", f"# Document {i}\n\n{base}\n\nDocument number {i}.\n".encode()) for i in range(count)]


async def raw_rate(embedder_name: str, documents: list[tuple[str, bytes]]) -> tuple[int, float]:
    settings = load_settings(WorkerSettings, embedder=embedder_name)
    embedder = make_embedder(settings)
    texts = [
        c.text
        for name, data in documents
        for c in chunk_text(
            parse_document(data, name, "text/markdown").text,
            embedder.count_tokens,
            settings.chunk_tokens,
            settings.chunk_overlap_tokens,
        )
    ]
    await embedder.embed_documents(texts[:2])  # load the model outside the timing
    started = time.perf_counter()
    for i in range(0, len(texts), settings.embed_batch_size):
        await embedder.embed_documents(texts[i : i + settings.embed_batch_size])
    return len(texts), time.perf_counter() - started


async def pipeline_rate(embedder_name: str, documents: list[tuple[str, bytes]], workers: int) -> tuple[int, float]:
    with tempfile.TemporaryDirectory() as tmp:
        processes = PlatformProcesses(
            Path(tmp), extra_env={"RAG_EMBEDDER": embedder_name, "RAG_WORKER_CONCURRENCY": str(workers)}
        )
        try:
            processes.start_all()
            key = processes.create_api_key("bench")
            async with GatewayClient(processes.gateway, key, timeout=600) as client:
                warm = await client.ingest_bytes("warmup.md", b"# Warm up\n\nThis loads the model in every process.")
                await wait(client, [warm.job.job_id])
                started = time.perf_counter()
                jobs = [(await client.ingest_bytes(name, data)).job.job_id for name, data in documents]
                chunks = await wait(client, jobs)
                return chunks, time.perf_counter() - started
        finally:
            processes.stop_all()


async def wait(client: GatewayClient, job_ids: list[str]) -> int:
    chunks = 0
    pending = set(job_ids)
    while pending:
        for job_id, job in (await client.find_jobs(pending)).items():
            if job.state in TERMINAL_STATES:
                if job.error:
                    raise RuntimeError(f"job {job_id} failed: {job.error}")
                chunks += job.chunks_done
                pending.discard(job_id)
        await asyncio.sleep(0.05)
    return chunks


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--embedder", default="hashing", choices=["hashing", "minilm"])
    parser.add_argument("--documents", type=int, default=20)
    parser.add_argument("--workers", type=int, default=1, help="worker loops in the worker process")
    args = parser.parse_args()
    documents = make_documents(args.documents)
    raw_chunks, raw_seconds = await raw_rate(args.embedder, documents)
    e2e_chunks, e2e_seconds = await pipeline_rate(args.embedder, documents, args.workers)
    raw = raw_chunks / raw_seconds
    e2e = e2e_chunks / e2e_seconds
    print(f"embedder={args.embedder} documents={args.documents} chunks={e2e_chunks}")
    print(f"raw embedder     : {raw:10.1f} chunks/s  ({raw_chunks} chunks in {raw_seconds:.2f} s)")
    print(f"end-to-end       : {e2e:10.1f} chunks/s  ({e2e_chunks} chunks in {e2e_seconds:.2f} s)")
    print(f"end-to-end / raw : {e2e / raw:10.3f}")


if __name__ == "__main__":
    asyncio.run(main())
