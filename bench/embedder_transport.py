"""CPU per query-embedding request, by HTTP client, against the OpenAI-compatible TEST DOUBLE (its
own process, on other CPUs than the client when the machine has them).

    python bench/embedder_transport.py [--requests 1500] [--concurrency 20] [--rounds 2]

Rows, alternated each round so a loaded machine weighs on all alike: `openai client` (the SDK's
`embeddings` resource through `make_openai_client`, parsed by the SDK), `httpx2` (a bare httpx2
POST, body parsed with json.loads), `aiohttp` (a bare aiohttp POST, same parsing) and
`OpenAIEmbedder` (the platform's embedder: aiohttp through `openai_http`, retries, checks,
normalisation). Printed: CPU ms per request in this process and the ratio to bare aiohttp.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import httpx2

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.ask_throughput import start_llm_double
from ragplatform.backends.embedders.openai_compatible import OpenAIEmbedder
from ragplatform.backends.openai_client import make_openai_client
from ragplatform.core.settings import EmbedderSettings, load_settings

MODEL = "test-embedding-model"
Embed = Callable[[str], Awaitable[Any]]


async def cpu_per_request(embed: Embed, requests: int, concurrency: int) -> float:
    """CPU ms of this process per request, `concurrency` requests in flight."""
    texts = [f"What is the maximum pressure of the Zephyr-9 pump? (ask {i})" for i in range(requests)]

    async def worker(first: int) -> None:
        for i in range(first, requests, concurrency):
            await embed(texts[i])

    await embed("warm up")
    began = time.process_time()
    await asyncio.gather(*(worker(k) for k in range(concurrency)))
    return 1000 * (time.process_time() - began) / requests


async def run(url: str, args: argparse.Namespace) -> None:
    body = {"model": MODEL, "encoding_format": "float"}
    sdk = make_openai_client(url, None, 30.0)
    bare_httpx = httpx2.AsyncClient(base_url=url, timeout=30.0)
    session = aiohttp.ClientSession()
    embedder = OpenAIEmbedder(
        load_settings(
            EmbedderSettings, embedder="openai", embedding_url=url, embedding_model=MODEL, embedding_dimension=384
        )
    )

    async def via_sdk(text: str) -> Any:
        return (await sdk.embeddings.create(model=MODEL, input=[text], encoding_format="float")).data[0].embedding

    async def via_httpx(text: str) -> Any:
        reply = await bare_httpx.post("/embeddings", json={**body, "input": [text]})
        return json.loads(reply.content)["data"][0]["embedding"]

    async def via_aiohttp(text: str) -> Any:
        async with session.post(f"{url}/embeddings", json={**body, "input": [text]}) as reply:
            return json.loads(await reply.read())["data"][0]["embedding"]

    rows: dict[str, Embed] = {
        "openai client": via_sdk,
        "httpx2": via_httpx,
        "aiohttp": via_aiohttp,
        "OpenAIEmbedder": embedder.embed_query,
    }
    figures: dict[str, list[float]] = {name: [] for name in rows}
    try:
        for _ in range(args.rounds):
            for name, embed in rows.items():
                figures[name].append(await cpu_per_request(embed, args.requests, args.concurrency))
    finally:
        await sdk.close()
        await bare_httpx.aclose()
        await session.close()
        await embedder.close()
    floor = min(figures["aiohttp"])
    print(
        f"CPU ms per embedding request ({args.requests} requests x {args.rounds} rounds, {args.concurrency} in flight)"
    )
    for name, values in figures.items():
        best = min(values)
        rounds = " ".join(f"{v:.3f}" for v in values)
        print(f"  {name:16} {best:6.3f} ms  ({best / floor:4.1f}x bare aiohttp)   rounds: {rounds}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=1500)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    cpus = sorted(os.sched_getaffinity(0))
    # The double on the last CPU, this process on the others (when there are others).
    if len(cpus) > 1:
        os.sched_setaffinity(0, {cpus[-1]})
    double, url = start_llm_double(0.0)
    if len(cpus) > 1:
        os.sched_setaffinity(0, set(cpus[:-1]))
    try:
        asyncio.run(run(url, args))
    finally:
        double.terminate()
        double.wait(timeout=30)


if __name__ == "__main__":
    main()
