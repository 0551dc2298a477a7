"""Where one short query's embedding time goes with all-MiniLM-L6-v2, the ways of computing it side
by side in one process: sentence-transformers' `encode` on torch (torch's default threads, then
one thread), the transformer called directly (fast tokenizer, no padding, `torch.inference_mode`,
one thread), the tokenizer alone, the ONNX Runtime graph the platform uses (`minilm_onnx.py`, one
thread), the platform's `MiniLMEmbedder.embed_query` (the ONNX path plus the worker-thread hop),
and a hit of the retrieval service's query-vector cache (`query_vectors.py`).

    python bench/query_embedding.py [--queries 200] [--rounds 5] [--cpus 0,1]

Queries are short questions (8-20 word pieces), each text distinct. The variants take turns in
rounds of `--queries` (so that machine noise falls on all alike); per variant: wall p50 / p99 and
CPU ms per query (the process's CPU time, so threads spinning on other cores count), and the ratio
to the ONNX graph's. The process is pinned to `--cpus` (default: every CPU it may use, as an
unpinned service; torch's default is then one thread per CPU).
The ONNX graph is exported into bench/results/model-cache on first use.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.hop_floor import parse_cpus
from ragplatform.backends.embedders import minilm_onnx
from ragplatform.backends.embedders.minilm import MiniLMEmbedder
from ragplatform.retrieval.query_vectors import QueryVectors

MODEL_CACHE = Path(__file__).resolve().parent / "results" / "model-cache"
QUESTIONS = [
    "When does the first ferry leave on Sundays?",
    "What is the maximum pressure of the Zephyr 9 pump?",
    "How do I configure shared_buffers in postgresql.conf?",
    "Which station logged the aurora sighting?",
    "how to undo git rebase",
    "difference between pg_dump custom format and plain SQL",
]


def percentile(ordered: list[float], q: float) -> float:
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--cpus", default=",".join(map(str, sorted(os.sched_getaffinity(0)))), help="CPUs to run on")
    args = parser.parse_args()
    os.sched_setaffinity(0, parse_cpus(args.cpus))

    import torch

    embedder = MiniLMEmbedder(cache_dir=MODEL_CACHE)
    asyncio.run(embedder.embed_query("warm up"))  # loads the model, exports or loads the graph
    assert embedder.query_runtime_used == "onnx", "the ONNX query path did not load (see the warning above)"
    model: Any = embedder._loaded_model()
    encoder = embedder._loaded_query_encoder()
    tokenizer: Any = encoder._tokenizer
    transformer = minilm_onnx._pooled(model[0].auto_model)
    default_threads = torch.get_num_threads()
    cache = QueryVectors(embedder, size=16)
    asyncio.run(cache.vector("t", "cached question"))

    def st_encode(text: str) -> object:
        return model.encode([text], normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)

    def direct(text: str) -> object:
        ids = torch.tensor([tokenizer.encode(text).ids])
        with torch.inference_mode():
            return transformer(ids, torch.ones_like(ids), torch.zeros_like(ids))

    loop = asyncio.new_event_loop()
    variants: dict[str, tuple[int, Callable[[str], object]]] = {
        f"st.encode, torch {default_threads} threads": (default_threads, st_encode),
        "st.encode, torch 1 thread": (1, st_encode),
        "direct torch, 1 thread": (1, direct),
        "tokenizer only": (1, tokenizer.encode),
        "onnx runtime, 1 thread": (1, encoder.encode),
        "MiniLMEmbedder.embed_query": (1, lambda t: loop.run_until_complete(embedder.embed_query(t))),
        "query-vector cache hit": (1, lambda _: loop.run_until_complete(cache.vector("t", "cached question"))),
    }
    wall: dict[str, list[float]] = {name: [] for name in variants}
    cpu: dict[str, float] = dict.fromkeys(variants, 0.0)
    counter = 0
    for _ in range(args.rounds):
        for name, (threads, call) in variants.items():
            torch.set_num_threads(threads)
            for _ in range(3):  # a few untimed calls after a thread-count change
                call(f"{QUESTIONS[counter % len(QUESTIONS)]} warm {counter}")
                counter += 1
            started_cpu = time.process_time()
            for _ in range(args.queries):
                text = f"{QUESTIONS[counter % len(QUESTIONS)]} ({counter})"
                counter += 1
                started = time.perf_counter()
                call(text)
                wall[name].append(time.perf_counter() - started)
            cpu[name] += time.process_time() - started_cpu
    loop.close()

    per_query = {name: 1000 * cpu[name] / len(wall[name]) for name in variants}
    floor = min(per_query[name] for name in variants if "onnx" in name)
    load = os.getloadavg()
    print(f"# {args.rounds} rounds x {args.queries} queries per variant; CPUs {args.cpus}; load {load[0]:.1f}")
    print(f"{'variant':<34} {'p50 ms':>8} {'p99 ms':>8} {'CPU ms/q':>9} {'x onnx':>7}")
    for name in variants:
        ordered = sorted(wall[name])
        p50, p99 = 1000 * statistics.median(ordered), 1000 * percentile(ordered, 0.99)
        print(f"{name:<34} {p50:>8.3f} {p99:>8.2f} {per_query[name]:>9.3f} {per_query[name] / floor:>7.2f}")


if __name__ == "__main__":
    main()
