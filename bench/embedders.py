"""Raw embedder speed: chunks/s (documents, batched as the worker does) and queries/s (one at a time,
as retrieval does), plus the time to the first vector (model load).

    python bench/embedders.py [--embedders hashing minilm] [--chunks 128] [--chunk-tokens 256]

Chunks are cut from the test corpus with the platform's own chunker and the embedder's own token
counter, so a "256-token chunk" means what it means in ingestion.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
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


async def measure(name: str, chunks: int, chunk_tokens: int, batch: int) -> None:
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

    start = time.perf_counter()
    for i in range(0, len(pieces), batch):
        await embedder.embed_documents(pieces[i : i + batch])
    chunk_rate = len(pieces) / (time.perf_counter() - start)

    rounds = max(1, 200 // len(QUERIES)) if name == "hashing" else 10
    start = time.perf_counter()
    for _ in range(rounds):
        for query in QUERIES:
            await embedder.embed_query(query)
    query_rate = rounds * len(QUERIES) / (time.perf_counter() - start)
    print(
        f"{embedder.name:<20} {first_s:>8.2f} {len(pieces):>7} {mean_tokens:>11.0f} "
        f"{chunk_rate:>10.1f} {query_rate:>10.1f}",
        flush=True,
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    available = ["hashing"] + (["minilm"] if importlib.util.find_spec("sentence_transformers") else [])
    parser.add_argument("--embedders", nargs="+", choices=["hashing", "minilm"], default=available)
    parser.add_argument("--chunks", type=int, default=128)
    parser.add_argument("--chunk-tokens", type=int, default=256)
    parser.add_argument("--batch", type=int, default=32)
    args = parser.parse_args()
    print(f"{'embedder':<20} {'first s':>8} {'chunks':>7} {'tokens/chk':>11} {'chunks/s':>10} {'queries/s':>10}")
    for name in args.embedders:
        await measure(name, args.chunks, args.chunk_tokens, args.batch)


if __name__ == "__main__":
    asyncio.run(main())
