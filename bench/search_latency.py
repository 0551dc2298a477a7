"""Search latency, what each retrieval stage adds, and what the embedded store's HNSW index buys:
the gateway's `Search` (auth, gateway -> retrieval hop, query encoding, tenant-filtered search)
with RAG_RETRIEVAL_MODE=dense and =hybrid, on an exact (unindexed) and an indexed copy of the
same store, at 10k and 100k chunks, side by side in one run; plus a floor, the same gateway path
on a 1,000-chunk store, measured in the same run.

    python bench/search_latency.py [--sizes 10000 100000] [--queries 300] [--embedder hashing|minilm]
        [--index-threshold 5000] [--service-cpus 0] [--harness-cpus 1] [--gateway-only]
        [--alone [ROUNDS]] [--only NAME ...] [--compare-tree DIR [--after-env NAME=VALUE ...]]

`--alone` runs phase 3's platforms (or the --compare-tree ones, with the floor added) one at a
time instead of all at once: each is started, warmed up, searched with its share of the queries
and stopped before the next starts, so it has the services' CPUs to itself (with several
platforms up, each one's idle processes wake on the same core and the tail measures them: seven
platforms on one core gave even the 1k-chunk floor a p99 near 40 ms). With ROUNDS > 1 the
queries are split into that many turns, A B C A B C ..., so a drift in the machine's load falls
on all platforms alike. It prints each platform's CPU ms per Search too (/proc: gateway,
retrieval, and the four idle services together). `--only` keeps only the named platforms (the
floor always runs), e.g. `--only "gw hybrid, indexed"`.

`--compare-tree DIR` (a checkout of another commit, e.g. `git worktree add /tmp/base main`)
replaces phases 3 and 4 with a before/after of the default path: hybrid on the indexed store,
with DIR's code and with this tree's, each query sent to both in turn (two platforms, so
less of the services' CPU goes to idle platforms than in phase 3). Both get the same settings
(the defaults, and --embedder for retrieval), except that each `--after-env` adds a third
platform: this tree's with that one setting changed (e.g. RAG_MINILM_QUERY_PRECISION=int8).

Phases, per size:
1. the exact store is generated once and cached under bench/results/search-latency/;
2. the index: a platform is started on a copy with indexing on (RAG_VECTOR_INDEX_THRESHOLD, here
   below 10k so that both sizes get an index; the default, 20,000, would keep 10k exact), and the
   gateway is searched (20 searches/s) while its retrieval service builds the index in the
   background; the build figures come from its log. The indexed store is cached too, so a second run skips the build;
3. five platforms at once (floor; dense and hybrid on the exact copy; dense and hybrid on the
   indexed copy), each query sent to every one in turn so that machine noise falls on all alike;
   with `--embedder minilm` two more, hybrid on the indexed copy: one with the `hashing` embedder
   (its difference to the same platform with MiniLM is the query model's share of a Search), one
   with RAG_MINILM_QUERY_RUNTIME=torch (the query path before ONNX Runtime, for a side-by-side
   before/after); the exported ONNX graph is shared through bench/results/model-cache;
4. in-process store calls, every query to every store in turn: dense / sparse / hybrid latency on
   the exact store and on copies of the indexed one searched with several ef, and recall@10 of
   the indexed results against the exact store's (ties counted as right: see `recall`).
   `--gateway-only` skips this phase.

Corpus: dense vectors are mixtures of two real MiniLM embeddings of man-page chunks (the cache of
bench/retrieval_quality.py, bench/results/embeddings-minilm.npz; without it, clustered Gaussian
vectors) plus noise, so neighbourhoods look like text embeddings' (recall on uniform random
vectors says nothing about real use); queries are drawn the same way. Chunk texts are 120 words
drawn from a Zipf distribution over 20,000 words, so the sparse index has the skewed posting
lists of real text; gateway queries are 6 such words (~16 MiniLM word pieces, a short question's
length), embedded by the services' embedder: `hashing` by default (the store and fusion alone),
`minilm` (the embedded default, all-MiniLM-L6-v2) with `--embedder minilm`, so that the figures
include the real query model. Every query text is distinct (no query-vector cache hit). Half
the chunks belong to another tenant. Services run pinned to --service-cpus, this harness to
--harness-cpus (the index build inherits the services' CPUs, niced).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import hashlib
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import TypeVar

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.hop_floor import parse_cpus
from bench.process_cpu import CpuMeter
from ragplatform.backends.vectors.edge_index import EdgeIndexSettings
from ragplatform.backends.vectors.embedded_edge import EdgeVectorStore
from ragplatform.backends.vectors.payload import SPARSE_VECTOR
from ragplatform.client import GatewayClient
from ragplatform.core.settings import WorkerSettings
from ragplatform.domain.models import ChunkPoint, SearchQuery
from ragplatform.domain.sparse_encoding import query_vector
from tests.support.platform_processes import PlatformProcesses

TENANT = "bench"
DIMENSION = 384
VOCABULARY = 20_000
CHUNK_WORDS = 120
QUERY_WORDS = 6
FLOOR_SIZE = 1_000
RESULTS = Path(__file__).resolve().parent / "results"
CACHE = RESULTS / "search-latency"
EMBEDDINGS = RESULTS / "embeddings-minilm.npz"
COLLECTION = "ragplatform_chunks"
SEARCH_EFS = (64, 128, 256)
MODEL_CACHE = RESULTS / "model-cache"  # one exported MiniLM query graph for every platform
EMBEDDER_RECORD = "embedder.json"  # the store's record of its model (embedded_edge.py)


def base_embeddings() -> tuple[np.ndarray, str]:
    """Real text embeddings to mix, or clustered Gaussian centres without the cache."""
    if EMBEDDINGS.is_file():
        with np.load(EMBEDDINGS) as cached:
            matrix = np.stack([cached[key] for key in sorted(cached.files)]).astype(np.float32)
        return matrix / np.linalg.norm(matrix, axis=1, keepdims=True), f"minilm-{len(matrix)}"
    rng = np.random.default_rng(11)
    return rng.standard_normal((2000, DIMENSION)).astype(np.float32) / np.sqrt(DIMENSION), "gaussian-2000"


def mixtures(rng: np.random.Generator, base: np.ndarray, n: int) -> np.ndarray:
    a, b = rng.integers(0, len(base), n), rng.integers(0, len(base), n)
    weight = rng.uniform(0.55, 0.95, (n, 1)).astype(np.float32)
    noise = rng.standard_normal((n, DIMENSION)).astype(np.float32) * (0.15 / np.sqrt(DIMENSION))
    v = weight * base[a] + (1 - weight) * base[b] + noise
    unit: np.ndarray = v / np.linalg.norm(v, axis=1, keepdims=True)
    return unit


def zipf_text(rng: np.random.Generator, words: int) -> str:
    ranks = np.minimum(rng.zipf(1.1, words), VOCABULARY)
    return " ".join(f"term{r}" for r in ranks)


def store_dir(data_dir: Path) -> Path:
    return data_dir / "vectors" / COLLECTION


async def populate(data_dir: Path, size: int, base: np.ndarray, seed: int) -> None:
    rng = np.random.default_rng(seed)
    store = EdgeVectorStore(store_dir(data_dir), EdgeIndexSettings(threshold=0))
    await store.open(DIMENSION)
    try:
        batch = 2000
        for start in range(0, size, batch):
            vectors = mixtures(rng, base, min(batch, size - start))
            points = [
                ChunkPoint(
                    tenant_id=TENANT if (start + i) % 2 == 0 else "other-tenant",
                    document_id=f"doc-{(start + i) // 50}",
                    filename=f"doc-{(start + i) // 50}.txt",
                    chunk_index=(start + i) % 50,
                    text=zipf_text(rng, CHUNK_WORDS),
                    vector=vec.tolist(),
                )
                for i, vec in enumerate(vectors)
            ]
            await store.upsert(points)
    finally:
        await store.close()


async def cached_exact_store(size: int, base: np.ndarray, source: str) -> Path:
    """A data dir whose vector store holds `size` generated chunks, made once per sparse encoding
    (`SPARSE_VECTOR` names it: a store of another encoding would be re-indexed on open and lose
    its HNSW graph)."""
    key = hashlib.sha256(f"{size}-{source}-{DIMENSION}-{CHUNK_WORDS}-{SPARSE_VECTOR}".encode()).hexdigest()[:10]
    path = CACHE / f"exact-{size}-{key}"
    if not (path / "complete").is_file():
        shutil.rmtree(path, ignore_errors=True)
        started = time.perf_counter()
        await populate(path, size, base, seed=size)
        (path / "complete").write_text("")
        print(f"# generated {size} chunks in {time.perf_counter() - started:.1f} s (cached in {path})")
    return path


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    p50 = statistics.median(ordered)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return p50 * 1000, p99 * 1000


def platform(
    source_data: Path,
    scratch: Path,
    name: str,
    cpus: set[int],
    env: dict[str, str],
    embedder: str = "hashing",
    tree: Path | None = None,
) -> PlatformProcesses:
    """A platform on a copy of `source_data`'s vector store. The copy forgets which embedder
    recorded itself in the store (the vectors are synthetic: any 384-dimensional embedder may
    search them, and the cached index was built by a `hashing` platform). `embedder` is the
    retrieval service's (the one that embeds a Search's query); the others keep `hashing`, so
    that no idle ingestion worker holds a second copy of the model. `tree`: run another
    checkout's code (its source roots first on PYTHONPATH) instead of this one's."""
    data = scratch / name
    shutil.copytree(store_dir(source_data), store_dir(data))
    (store_dir(data) / EMBEDDER_RECORD).unlink(missing_ok=True)
    base_env = {"RAG_RATE_LIMIT_RPS": "100000", "RAG_RATE_LIMIT_BURST": "100000", "RAG_VECTOR_INDEX_THRESHOLD": "0"}
    # The idle worker polls its queue as often as it would by default (the test fixture's 0.1 s
    # makes tests quick, and made ten wake-ups a second on the services' core).
    base_env["RAG_POLL_SECONDS"] = str(WorkerSettings.model_fields["poll_seconds"].default)
    retrieval = {"retrieval": {"RAG_EMBEDDER": embedder, "RAG_MODEL_CACHE_DIR": str(MODEL_CACHE)}}
    if tree is not None:
        base_env["PYTHONPATH"] = os.pathsep.join(str(tree / root) for root in ("services", "operator"))
    return PlatformProcesses(data, extra_env=base_env | env, service_env=retrieval, cpus=cpus)


@contextlib.contextmanager
def harness_gc_off() -> Iterator[None]:
    """No cyclic garbage collection in this harness while it times searches: its own full
    collections (tens of ms: numpy, grpc, qdrant-edge and the platforms' state are many objects)
    landed inside a timed search and showed as the platform's tail. Startup's objects are frozen
    and the collector is off until the block ends (reference counting still frees the rest)."""
    gc.collect()
    gc.freeze()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
        gc.unfreeze()


async def timed(call: Callable[[], Awaitable[object]]) -> float:
    started = time.perf_counter()
    await call()
    return time.perf_counter() - started


def index_env(threshold: int) -> dict[str, str]:
    return {"RAG_VECTOR_INDEX_THRESHOLD": str(threshold), "RAG_VECTOR_INDEX_SETTLE_SECONDS": "0"}


async def build_index(
    exact: Path, size: int, threshold: int, scratch: Path, cpus: set[int], queries: list[str]
) -> Path:
    """The indexed store (cached): built by a platform's retrieval service in the background while
    this harness searches through its gateway; prints the build figures and the latency meanwhile."""
    path = CACHE / f"{exact.name}-indexed-{threshold}"
    if (path / "complete").is_file():
        print(f"{size:>8} index build: cached in {path} ({(path / 'build.json').read_text().strip()})")
        return path
    builder = platform(exact, scratch, "builder", cpus, {"RAG_RETRIEVAL_MODE": "hybrid"} | index_env(threshold))
    samples: list[float] = []
    started = time.perf_counter()
    try:
        builder.start_all()
        async with GatewayClient(builder.gateway, builder.create_api_key(TENANT)) as client:
            built = ""
            while not built:
                for query in queries[:50]:  # paced: a steady 20 searches/s, not a flood
                    samples.append(await timed(lambda q=query: client.search(q, top_k=5)))  # type: ignore[misc]
                    await asyncio.sleep(max(0.0, 0.05 - samples[-1]))
                built = next(
                    (line for line in builder.log_text("retrieval").splitlines() if "vector_index_built" in line), ""
                )
                if time.perf_counter() - started > 3600:
                    raise TimeoutError("the index build took over an hour")
        figures = {k: v for k, v in json.loads(built).items() if k.endswith("_seconds") or k in ("points", "replayed")}
    finally:
        builder.stop_all()
    shutil.rmtree(path, ignore_errors=True)
    shutil.copytree(store_dir(builder.data_dir), store_dir(path))
    (path / "build.json").write_text(json.dumps(figures))
    (path / "complete").write_text("")
    p50, p99 = percentiles(samples)
    print(f"{size:>8} index build: {json.dumps(figures)}, {time.perf_counter() - started:.0f} s from start")
    print(f"{size:>8} {'gw hybrid, during build':>26} {p50:9.2f} {p99:9.2f}   ({len(samples)} searches)")
    return path


WARM_UP = 30
#: Per platform, CPU ms per measured Search by service group (gateway, retrieval, idle services).
CpuPerSearch = dict[str, dict[str, float]]


async def through_gateways(
    platforms: dict[str, PlatformProcesses], queries: list[str], rounds: int = 0
) -> tuple[dict[str, list[float]], CpuPerSearch]:
    """Each platform's Search latencies (and CPU per Search, when measured): all platforms at
    once, each query sent to every one in turn; with `rounds`, one at a time (`one_at_a_time`)."""
    if rounds:
        return await one_at_a_time(platforms, queries, rounds)
    return await all_at_once(platforms, queries), {}


async def all_at_once(platforms: dict[str, PlatformProcesses], queries: list[str]) -> dict[str, list[float]]:
    """All platforms running at once, each query sent to every one in turn."""
    samples: dict[str, list[float]] = {name: [] for name in platforms}
    clients: dict[str, GatewayClient] = {}
    try:
        for name, processes in platforms.items():
            processes.start_all()
            clients[name] = GatewayClient(processes.gateway, processes.create_api_key(TENANT))
            await clients[name].__aenter__()
        for i in range(20):
            for client in clients.values():
                await client.search(f"warm up {i}", top_k=5)
        with harness_gc_off():
            for query in queries:
                for name, client in clients.items():
                    samples[name].append(await timed(lambda c=client, q=query: c.search(q, top_k=5)))  # type: ignore[misc]
    finally:
        for client in clients.values():
            await client.__aexit__(None, None, None)
        for processes in platforms.values():
            processes.stop_all()
    return samples


async def one_at_a_time(
    platforms: dict[str, PlatformProcesses], queries: list[str], rounds: int
) -> tuple[dict[str, list[float]], CpuPerSearch]:
    """Each platform alone on the services' CPUs: started, warmed up, searched with its share of
    the queries, stopped; the queries are split into `rounds` parts and the platforms take turns
    once per part (A B C A B C ...), so that a drift in the machine's load falls on all alike.
    The CPU per Search is read from /proc (the services' CPU over the measured searches only)."""
    samples: dict[str, list[float]] = {name: [] for name in platforms}
    cpu: dict[str, dict[str, float]] = {name: {} for name in platforms}
    keys: dict[str, str] = {}
    for part in range(rounds):
        for name, processes in platforms.items():
            processes.start_all()
            try:
                keys.setdefault(name, processes.create_api_key(TENANT))
                async with GatewayClient(processes.gateway, keys[name]) as client:
                    for i in range(WARM_UP):
                        await client.search(f"warm up {part} {i}", top_k=5)
                    await asyncio.sleep(1.0)  # let start-up's stragglers (first polls, logs) pass
                    idle = [processes.pid(s) for s in processes.processes if s not in ("gateway", "retrieval")]
                    groups: dict[str, int | list[int]] = {
                        "gateway": processes.pid("gateway"),
                        "retrieval": processes.pid("retrieval"),
                        "idle services": idle,
                    }
                    meter = CpuMeter(groups)
                    meter.start()
                    with harness_gc_off():
                        for query in queries[part::rounds]:
                            samples[name].append(await timed(lambda q=query: client.search(q, top_k=5)))  # type: ignore[misc]
                    for group, seconds in meter.stop().items():
                        cpu[name][group] = cpu[name].get(group, 0.0) + seconds * 1000
            finally:
                processes.stop_all()
    per_search = {
        name: {group: ms / len(samples[name]) for group, ms in by_group.items()} for name, by_group in cpu.items()
    }
    return samples, per_search


def cpu_note(cpu: CpuPerSearch, name: str) -> str:
    """`name`'s CPU ms per Search by service group, when it was measured."""
    if name not in cpu:
        return ""
    by_group = cpu[name]
    return "; cpu ms/search " + ", ".join(f"{group} {ms:.1f}" for group, ms in by_group.items())


async def direct(
    stores: dict[str, tuple[Path, EdgeIndexSettings]], texts: list[str], vectors: np.ndarray
) -> dict[str, dict[str, list[float]]]:
    """Store-only latency per store and mode (the query's sparse encoding timed with the search),
    all stores open at once and each query sent to every one in turn; the top-10 ids of every
    query go to `TOP`."""
    opened = {name: EdgeVectorStore(store_dir(data), index) for name, (data, index) in stores.items()}
    for store in opened.values():
        await store.open(DIMENSION)
    samples: dict[str, dict[str, list[float]]] = {name: {"dense": [], "sparse": [], "hybrid": []} for name in stores}
    try:
        for text, vec in zip(texts, vectors, strict=True):
            for mode in ("dense", "sparse", "hybrid"):
                for name, store in opened.items():
                    started = time.perf_counter()
                    sparse = query_vector(text) if mode != "dense" else None
                    vector = vec.tolist() if mode != "sparse" else []
                    hits = await store.search(SearchQuery(tenant_id=TENANT, vector=vector, top_k=20, sparse=sparse))
                    samples[name][mode].append(time.perf_counter() - started)
                    TOP.setdefault((name, mode), []).append([(hit.chunk_id, hit.score) for hit in hits])
    finally:
        for store in opened.values():
            await store.close()
    return samples


FLOOR = "floor (1k chunks)"
T = TypeVar("T")


def chosen(recipes: dict[str, T], only: list[str]) -> dict[str, T]:
    """The floor and the platforms `--only` names (all of them when it names none)."""
    unknown = sorted(set(only) - recipes.keys())
    if unknown:
        raise SystemExit(f"--only: no platform named {unknown}; the names are {sorted(recipes)}")
    return {name: recipe for name, recipe in recipes.items() if not only or name == FLOOR or name in only}


#: The platform that differs from "gw hybrid, indexed" only in its query embedder (`hashing`).
HASHING_TWIN = "gw hybrid, indexed, hashing"
#: The same with MiniLM's queries through torch (RAG_MINILM_QUERY_RUNTIME=torch).
TORCH_TWIN = "gw hybrid, indexed, torch q"

#: (store, mode) -> the top-20 (id, score) of each query, filled by `direct`.
TOP: dict[tuple[str, str], list[list[tuple[str, float]]]] = {}


def recall(found: list[list[tuple[str, float]]], exact: list[list[tuple[str, float]]], k: int = 10) -> float:
    """recall@k against the exact results, counting ties: a passage whose exact score equals the
    k-th best is as right as the one the exact search happened to list (the synthetic texts give
    many equal BM25 scores, and equal-score order is arbitrary)."""
    scores = []
    for got, truth in zip(found, exact, strict=True):
        if not truth:
            continue
        kth = truth[min(k, len(truth)) - 1][1]
        right = {chunk for chunk, score in truth if score >= kth - 1e-6}
        scores.append(len({chunk for chunk, _ in got[:k]} & right) / min(k, len(truth)))
    return float(np.mean(scores))


def row(size: int, path: str, p50: float, p99: float, note: str = "") -> None:
    print(f"{size:>8} {path:>26} {p50:9.2f} {p99:9.2f}   {note}".rstrip())


async def measure_size(size: int, args: argparse.Namespace, base: np.ndarray, source: str, floor: Path) -> None:
    rng = np.random.default_rng(size + 1)
    queries = [zipf_text(rng, QUERY_WORDS) for _ in range(args.queries)]
    query_vectors = mixtures(rng, base, args.queries)
    exact = await cached_exact_store(size, base, source)
    cpus = parse_cpus(args.service_cpus)
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        indexed = await build_index(exact, size, args.index_threshold, scratch / "build", cpus, queries)
        dense, hybrid = {"RAG_RETRIEVAL_MODE": "dense"}, {"RAG_RETRIEVAL_MODE": "hybrid"}
        indexed_env = index_env(args.index_threshold)
        model = args.embedder
        if args.compare_tree is not None:
            env = hybrid | indexed_env
            floor_platform = platform(floor, scratch, "floor", cpus, dense, model) if args.alone else None
            await compare_trees(
                size,
                args.compare_tree,
                indexed,
                scratch,
                cpus,
                env,
                model,
                queries,
                args.after_env,
                floor_platform,
                args.alone,
            )
            return
        recipes: dict[str, Callable[[], PlatformProcesses]] = {  # made when chosen: each copies the store
            FLOOR: lambda: platform(floor, scratch, "floor", cpus, dense, model),
            "gw dense, exact": lambda: platform(exact, scratch, "de", cpus, dense, model),
            "gw hybrid, exact": lambda: platform(exact, scratch, "he", cpus, hybrid, model),
            "gw dense, indexed": lambda: platform(indexed, scratch, "di", cpus, dense | indexed_env, model),
            "gw hybrid, indexed": lambda: platform(indexed, scratch, "hi", cpus, hybrid | indexed_env, model),
        }
        if args.embedder != "hashing":
            recipes[HASHING_TWIN] = lambda: platform(indexed, scratch, "hh", cpus, hybrid | indexed_env, "hashing")
            torch_query = hybrid | indexed_env | {"RAG_MINILM_QUERY_RUNTIME": "torch"}
            recipes[TORCH_TWIN] = lambda: platform(indexed, scratch, "ht", cpus, torch_query, model)
        platforms = {name: make() for name, make in chosen(recipes, args.only).items()}
        samples, cpu = await through_gateways(platforms, queries, args.alone)
        gateway = {name: percentiles(s) for name, s in samples.items()}
    floor50, floor99 = gateway[FLOOR]
    for name, (p50, p99) in gateway.items():
        row(size, name, p50, p99, f"(x{p50 / floor50:.2f} / x{p99 / floor99:.2f} the floor{cpu_note(cpu, name)})")
    for kind in ("exact", "indexed"):
        if f"gw dense, {kind}" in gateway and f"gw hybrid, {kind}" in gateway:
            dense50, hybrid50 = gateway[f"gw dense, {kind}"][0], gateway[f"gw hybrid, {kind}"][0]
            print(f"{size:>8} {'hybrid adds (' + kind + ')':>26} {hybrid50 - dense50:+9.2f}   ms at p50")
    if HASHING_TWIN in gateway and "gw hybrid, indexed" in gateway:
        twin50, twin99 = gateway[HASHING_TWIN]
        for name, runtime in (("gw hybrid, indexed", "default"), (TORCH_TWIN, "torch")):
            if name not in gateway:
                continue
            model50, model99 = gateway[name]
            share = f"(hybrid, indexed; {(model50 - twin50) / model50:.0%} of p50)"
            row(size, f"query model adds ({runtime})", model50 - twin50, model99 - twin99, share)
    if args.gateway_only:
        return

    with tempfile.TemporaryDirectory() as tmp:
        stores = {"exact": (exact, EdgeIndexSettings(threshold=0))}
        for ef in SEARCH_EFS:  # one copy per ef: a store is opened by one object at a time
            copy = Path(tmp) / f"ef{ef}"
            shutil.copytree(store_dir(indexed), store_dir(copy))
            stores[f"indexed ef={ef}"] = (copy, EdgeIndexSettings(threshold=args.index_threshold, search_ef=ef))
        TOP.clear()
        runs = await direct(stores, queries, query_vectors)
    for name, by_mode in runs.items():
        for mode, s in by_mode.items():
            note = ""
            if name != "exact":
                note = f"recall@10 vs exact {recall(TOP[(name, mode)], TOP[('exact', mode)]):.3f}"
            row(size, f"store {mode}, {name}", *percentiles(s), note)


async def compare_trees(
    size: int,
    tree: Path,
    indexed: Path,
    scratch: Path,
    cpus: set[int],
    env: dict[str, str],
    model: str,
    queries: list[str],
    after_env: list[str],
    floor: PlatformProcesses | None = None,
    rounds: int = 0,
) -> None:
    """The default path (hybrid, indexed) with `tree`'s code and with this tree's, side by side;
    and this tree's with each of `after_env` (NAME=VALUE) set; and the floor, when given."""
    here = Path(__file__).resolve().parents[1]
    before, after = f"before: {tree.name}"[:26], f"after: {here.name}"[:26]
    platforms = {
        before: platform(indexed, scratch, "before", cpus, env, model, tree=tree.resolve()),
        after: platform(indexed, scratch, "after", cpus, env, model),
    }
    for i, setting in enumerate(after_env):
        name, _, value = setting.partition("=")
        label = f"after, {value}"[:26]  # the column is narrow: the setting is named above the rows
        print(f"{size:>8} # {label}: {after} with {setting}")
        platforms[label] = platform(indexed, scratch, f"after{i}", cpus, env | {name: value}, model)
    if floor is not None:
        platforms = {FLOOR: floor} | platforms
    samples, cpu = await through_gateways(platforms, queries, rounds)
    gateway = {name: percentiles(s) for name, s in samples.items()}
    before50, before99 = gateway[before]
    for name, (p50, p99) in gateway.items():
        note = f"x{p50 / before50:.2f} / x{p99 / before99:.2f} before"
        if FLOOR in gateway:
            note += f", x{p50 / gateway[FLOOR][0]:.2f} / x{p99 / gateway[FLOOR][1]:.2f} the floor"
        row(size, name, p50, p99, f"({note}{cpu_note(cpu, name)})")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--index-threshold", type=int, default=5_000)
    parser.add_argument("--service-cpus", default="0")
    parser.add_argument("--harness-cpus", default="1")
    parser.add_argument(
        "--embedder", choices=["hashing", "minilm"], default="hashing", help="RAG_EMBEDDER of the measured platforms"
    )
    parser.add_argument("--gateway-only", action="store_true", help="skip the in-process store phase")
    parser.add_argument(
        "--alone",
        type=int,
        nargs="?",
        const=1,
        default=0,
        metavar="ROUNDS",
        help="one platform at a time on the services' CPUs (start, warm up, measure, stop), the queries "
        "split into ROUNDS turns (default 1); prints CPU ms per Search per service too",
    )
    parser.add_argument(
        "--only",
        nargs="+",
        default=[],
        metavar="NAME",
        help="phase 3: only these platforms, by the name printed in the path column (the floor always runs)",
    )
    parser.add_argument(
        "--compare-tree", type=Path, help="another checkout: its default path side by side with this tree's"
    )
    parser.add_argument(
        "--after-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="with --compare-tree: one more platform, this tree's with this setting",
    )
    args = parser.parse_args()
    os.sched_setaffinity(0, parse_cpus(args.harness_cpus))
    base, source = base_embeddings()
    print(
        f"# corpus vectors: mixtures of {source}; services on CPUs {args.service_cpus}, "
        f"harness on {args.harness_cpus}; query embedder {args.embedder}"
    )
    floor = await cached_exact_store(FLOOR_SIZE, base, source)
    print(f"{'chunks':>8} {'path':>26} {'p50 ms':>9} {'p99 ms':>9}")
    for size in args.sizes:
        await measure_size(size, args, base, source, floor)


if __name__ == "__main__":
    asyncio.run(main())
