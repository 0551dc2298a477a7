"""The embedded vector store: Qdrant's engine in-process (`qdrant-edge-py`), files in a directory.

Chosen over qdrant-client's local mode by measurement (`bench/vector_engines.py`; figures in the
issue note): it upserts and searches one to two orders of magnitude faster, with the same query
model (payload filters, cosine distance) as the Qdrant server used in production.

Small stores are searched exactly (always fresh, a few ms). Once `EdgeIndexSettings.threshold`
chunks have no index, a background build gives them an HNSW graph without blocking searches
(`edge_indexer.py`: a copy is indexed in a separate process, then swapped in); chunks written
since the last build sit in an unindexed segment that every search scans exactly.

ONE PROCESS OWNS THE STORE: the retrieval service. The engine locks its write-ahead log, so a
second process opening the same directory gets `FailedPrecondition`; every other service reaches
the vectors through retrieval's gRPC API.

Callers may rely on:
* the directory is created on `open(dimension)` with cosine distance; reopening checks that the
  stored dimension equals `dimension` and raises `FailedPrecondition` naming both otherwise;
  `open(dimension, model)` also records the embedding model in the directory (`embedder.json`)
  and refuses another model later (`embedder_record.py`: two 384-dimensional models' vectors
  would mix silently);
* upserts and deletes survive a crash of the process once they return (the engine writes a
  write-ahead log first; `close` flushes segments), and upserts are idempotent (point ids come
  from `ChunkPoint.point_id`);
* every search filters on the tenant id; metadata filters are exact matches, all required;
* calls run in worker threads (the engine is thread-safe), but searches on the event loop; writes
  are serialised (one lock), and `close` waits for the write in progress. qdrant-edge-py 0.9 keeps
  Python's GIL for the length of each call (measured: a thread ticking every ms ran ~10 times per
  100 back-to-back searches), so calls do not overlap each other or the event loop whichever
  thread makes them: every call must stay short, which is what the index is for, and the long ones
  (an index build, loading a copy) run in other processes;
* every chunk has a sparse BM25-style vector (`payload.SPARSE_VECTOR`, IDF modifier) beside the
  dense one; a query with both a dense and a sparse vector is one engine call: two prefetches
  fused by the engine (`rrf`, `dbsf`), or, for `relative` fusion, both lists as ids and scores in
  one batch, fused by `domain.fusion`, then the payloads of the best read. A store created
  before sparse vectors existed is re-indexed from its own payloads on `open`
  (`embedded_edge_upgrade.py`), losing nothing;
* a write that returned is found by the next search, whether or not an index build is running;
  a build interrupted by a crash loses nothing (the live store is untouched until the swap, and a
  swap cut short is completed or undone at the next open).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import qdrant_edge as qe

from ragplatform.backends.vectors import edge_index_process
from ragplatform.backends.vectors import payload as fields
from ragplatform.backends.vectors.edge_index import (
    EdgeIndexSettings,
    dense_search_params,
    engine_index_config,
    unindexed_chunks,
)
from ragplatform.backends.vectors.edge_indexer import BackgroundIndexer, IndexBuild
from ragplatform.backends.vectors.edge_swap import SwapDirs, discard_backup, finish_interrupted_swap, swap_in
from ragplatform.backends.vectors.edge_writes import (
    DeleteChunks,
    EdgeWrite,
    UpsertChunks,
    engine_operation,
    engine_sparse,
    tenant_condition,
)
from ragplatform.backends.vectors.embedded_edge_upgrade import (
    CONFIG_FILE,
    create_field_indexes,
    finish_interrupted_upgrade,
    has_sparse_vector,
    upgrade_to_hybrid,
)
from ragplatform.backends.vectors.embedder_record import model_to_record
from ragplatform.domain.errors import FailedPrecondition, InvalidArgument
from ragplatform.domain.fusion import relative_score_fusion
from ragplatform.domain.models import ChunkPoint, HybridFusion, ScoredPassage, SearchQuery

_CONFIG_FILE = CONFIG_FILE
_EMBEDDER_FILE = "embedder.json"


def search_filter(query: SearchQuery) -> Any:
    """The engine filter for a query: tenant always, then metadata labels and documents."""
    if not query.tenant_id:
        raise InvalidArgument("a search needs the tenant id; every search is scoped to one tenant.")
    must = [tenant_condition(query.tenant_id)]
    for key, value in sorted(query.filters.items()):
        must.append(qe.FieldCondition(fields.metadata_path(key), match=qe.MatchValue(value)))
    if query.document_ids:
        must.append(qe.FieldCondition(fields.DOCUMENT_ID, match=qe.MatchAny(list(query.document_ids))))
    return qe.Filter(must=must)


def edge_config(dimension: int, index: EdgeIndexSettings | None = None) -> Any:
    """The engine configuration of a store: cosine dense vectors, the IDF-weighted sparse one,
    the HNSW index settings (`edge_index.py`) and the threads a search runs on (1: the calling
    thread, no pool to wake; 0: the engine's default pool)."""
    settings = index or EdgeIndexSettings()
    return qe.EdgeConfig(
        vectors=qe.EdgeVectorParams(size=dimension, distance=qe.Distance.Cosine),
        sparse_vectors={fields.SPARSE_VECTOR: qe.EdgeSparseVectorParams(modifier=qe.Modifier.Idf)},
        max_search_threads=settings.search_threads or None,
        **engine_index_config(settings, dimension),
    )


def index_build_dirs(path: Path) -> SwapDirs:
    """The directories a background index build of the store in `path` uses."""
    return SwapDirs.beside(path, ".indexing", ".pre-index")


def _fusion(fusion: HybridFusion) -> Any:
    if fusion.method == "dbsf":
        return qe.Fusion.Dbsf()
    if fusion.method == "relative":
        raise InvalidArgument("relative fusion is not the engine's: the store fuses it itself (relative_requests)")
    return qe.Fusion.Rrf(k=fusion.rrf_k, weights=[fusion.dense_weight, fusion.sparse_weight])


def search_request(query: SearchQuery, dense_params: Any = None) -> Any:
    """The engine request for a query: dense, sparse, or both fused in one call (see
    `SearchQuery`). Every stage carries the tenant filter; dense stages carry `dense_params`
    (`qe.SearchParams`, e.g. the HNSW ef)."""
    flt = search_filter(query)
    dense = bool(query.vector)
    sparse = query.sparse is not None and len(query.sparse) > 0
    # 0 means "keep all" in the API; cosine scores can be negative.
    threshold = query.score_threshold if query.score_threshold > 0 else None
    common: dict[str, Any] = {"filter": flt, "with_payload": True, "with_vector": False}
    if dense and sparse:
        assert query.sparse is not None
        depth = max(query.fusion.candidates, query.top_k)
        dense_stage = qe.Prefetch(
            limit=depth,
            query=qe.Query.Nearest(list(query.vector)),
            filter=flt,
            score_threshold=threshold,
            params=dense_params,
        )
        sparse_query = qe.Query.Nearest(engine_sparse(query.sparse), using=fields.SPARSE_VECTOR)
        # With a threshold, the sparse list re-ranks only the dense candidates above it, so no
        # passage below the threshold comes back through the lexical side.
        sparse_stage = qe.Prefetch(
            limit=depth, query=sparse_query, filter=flt, prefetches=[dense_stage] if threshold is not None else None
        )
        prefetches = [dense_stage, sparse_stage]
        return qe.QueryRequest(limit=query.top_k, prefetches=prefetches, query=_fusion(query.fusion), **common)
    if sparse:
        assert query.sparse is not None
        nearest = qe.Query.Nearest(engine_sparse(query.sparse), using=fields.SPARSE_VECTOR)
        return qe.QueryRequest(limit=query.top_k, query=nearest, **common)
    if not dense:
        raise InvalidArgument("a search needs a query vector or query terms; the query has neither.")
    return qe.QueryRequest(
        limit=query.top_k,
        query=qe.Query.Nearest(list(query.vector)),
        score_threshold=threshold,
        params=dense_params,
        **common,
    )


def relative_requests(query: SearchQuery, dense_params: Any = None) -> tuple[Any, Any]:
    """The dense and the sparse candidate requests of a `relative` hybrid query, ids and scores
    only (payloads are fetched for the fused best). The same stages as `search_request`'s: with
    a threshold, the sparse list ranks only the dense candidates above it."""
    assert query.sparse is not None
    flt = search_filter(query)
    threshold = query.score_threshold if query.score_threshold > 0 else None
    depth = max(query.fusion.candidates, query.top_k)
    common: dict[str, Any] = {"filter": flt, "with_payload": False, "with_vector": False}
    nearest = qe.Query.Nearest(list(query.vector))
    dense = qe.QueryRequest(limit=depth, query=nearest, score_threshold=threshold, params=dense_params, **common)
    above = qe.Prefetch(limit=depth, query=nearest, filter=flt, score_threshold=threshold, params=dense_params)
    sparse = qe.QueryRequest(
        limit=depth,
        query=qe.Query.Nearest(engine_sparse(query.sparse), using=fields.SPARSE_VECTOR),
        prefetches=[above] if threshold is not None else None,
        **common,
    )
    return dense, sparse


def stored_dimension(path: Path) -> int | None:
    """The vector size recorded in an existing store's config, or None if unreadable."""
    try:
        config = json.loads((path / _CONFIG_FILE).read_text())
        return int(config["vectors"][""]["size"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def recorded_model(path: Path) -> str | None:
    """The embedding model recorded in a store's directory, or None if none is (or unreadable)."""
    try:
        return str(json.loads((path / _EMBEDDER_FILE).read_text())["model"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def record_model(path: Path, model: str) -> None:
    """Write the store's embedding model, atomically (a crash leaves the old record or the new)."""
    staged = path / f"{_EMBEDDER_FILE}.tmp"
    staged.write_text(json.dumps({"model": model}) + "\n")
    staged.replace(path / _EMBEDDER_FILE)


@dataclass(frozen=True)
class IndexStatus:
    """What the store's index looks like now (for operators, tests and the bench)."""

    points: int
    unindexed: int
    building: bool
    builds: tuple[IndexBuild, ...]
    last_error: str


class EdgeVectorStore:
    """`VectorStore` in the directory `path` (see the module docstring)."""

    def __init__(self, path: Path, index: EdgeIndexSettings | None = None) -> None:
        self._path = path
        self._index = index or EdgeIndexSettings()
        self._dense_params = dense_search_params(self._index)
        self._shard: Any = None
        self._dimension = 0
        self._write_lock = threading.Lock()
        # Searches in progress per shard object: a shard replaced by an index build is closed
        # only once the searches that started on it have finished.
        self._readers_changed = threading.Condition()
        self._readers: dict[int, int] = {}
        # Writes taken while an index build works on a copy (replayed into it before the swap);
        # past `threshold` chunks the build is abandoned (it would be stale: the next one covers them).
        self._journal: list[EdgeWrite] | None = None
        self._journal_chunks = 0
        self._journal_overflowed = False
        self._indexer: BackgroundIndexer | None = None

    @property
    def path(self) -> Path:
        return self._path

    @property
    def index_settings(self) -> EdgeIndexSettings:
        return self._index

    async def open(self, dimension: int, model: str = "") -> None:
        await asyncio.to_thread(self._open, dimension, model)

    def _mismatch(self, stored: int, dimension: int) -> FailedPrecondition:
        return FailedPrecondition(
            f"the vector store in {self._path} holds {stored}-dimensional vectors but the configured "
            f"embedder makes {dimension}-dimensional ones (RAG_EMBEDDER or RAG_EMBEDDING_DIMENSION "
            f"changed since it was filled): restore the previous embedder settings, or delete "
            f"{self._path} and ingest the documents again."
        )

    def _open(self, dimension: int, model: str) -> None:
        if self._shard is not None:  # opened already by this object: only check the dimension
            if dimension != self._dimension:
                raise self._mismatch(self._dimension, dimension)
            return
        config = edge_config(dimension, self._index)
        finish_interrupted_upgrade(self._path)
        finish_interrupted_swap(index_build_dirs(self._path))
        exists = (self._path / _CONFIG_FILE).is_file()
        stored = stored_dimension(self._path) if exists else None
        if stored is not None and stored != dimension:
            raise self._mismatch(stored, dimension)
        try:
            if exists and not has_sparse_vector(self._path):
                upgrade_to_hybrid(self._path, config)
            if exists:
                shard = qe.EdgeShard.load(str(self._path), config)
            else:
                self._path.mkdir(parents=True, exist_ok=True)
                shard = qe.EdgeShard.create(str(self._path), config)
                create_field_indexes(shard)
        except Exception as exc:  # the engine raises bare Exception with a message
            raise self._open_error(exc, dimension) from exc
        if model:
            self._check_model(shard, exists, model)
        self._shard, self._dimension = shard, dimension
        if self._index.enabled:
            self._indexer = BackgroundIndexer(self, index_build_dirs(self._path), self._index)
            self._indexer.start()

    def _check_model(self, shard: Any, existed: bool, model: str) -> None:
        """Record the embedding model, or close the shard and raise if another filled the store."""
        recorded = recorded_model(self._path)
        try:
            has_vectors = existed and int(shard.count(qe.CountRequest(exact=True))) > 0
            name = model_to_record(
                f"the vector store in {self._path}",
                recorded,
                model,
                has_vectors,
                f"move {self._path} away and ingest the documents again",
            )
        except BaseException:
            shard.close()
            raise
        if name != recorded:
            record_model(self._path, name)

    def _open_error(self, exc: Exception, dimension: int) -> FailedPrecondition:
        message = str(exc)
        if "wouldblock" in message.lower():
            return FailedPrecondition(
                f"the vector store in {self._path} is already open in another process. Only one "
                "process (the retrieval service) may own the embedded vector store: stop the other "
                "one, or give this one another RAG_DATA_DIR."
            )
        if "incompatible" in message.lower():
            return self._mismatch(stored_dimension(self._path) or -1, dimension)
        return FailedPrecondition(
            f"cannot open the vector store in {self._path}: {message}. If the directory is damaged, "
            "move it away and ingest the documents again."
        )

    def _opened(self) -> Any:
        if self._shard is None:
            raise RuntimeError("the vector store is not open: call open(dimension) first")
        return self._shard

    @contextmanager
    def _reading(self) -> Iterator[Any]:
        """The current shard, kept open until the caller is done with it."""
        with self._readers_changed:
            shard = self._opened()
            self._readers[id(shard)] = self._readers.get(id(shard), 0) + 1
        try:
            yield shard
        finally:
            with self._readers_changed:
                self._readers[id(shard)] -= 1
                if not self._readers[id(shard)]:
                    del self._readers[id(shard)]
                self._readers_changed.notify_all()

    async def close(self) -> None:
        await asyncio.to_thread(self._close)

    def _close(self) -> None:
        indexer, self._indexer = self._indexer, None
        if indexer is not None:
            indexer.stop()
        with self._write_lock:
            shard, self._shard = self._shard, None
            if shard is not None:
                shard.flush()
                shard.close()

    async def upsert(self, points: list[ChunkPoint]) -> None:
        if not points:
            return
        for point in points:
            if len(point.vector) != self._dimension:
                raise InvalidArgument(
                    f"chunk {point.chunk_index} of document {point.document_id} has a "
                    f"{len(point.vector)}-dimensional vector; this store holds {self._dimension}-"
                    "dimensional ones. Configure workers and retrieval with the same embedder."
                )
        await asyncio.to_thread(self._write, UpsertChunks(tuple(points)))

    def _write(self, write: EdgeWrite) -> None:
        operation = engine_operation(write)
        with self._write_lock:
            self._opened().update(operation)
            if self._journal is not None:  # an index build is copying this store: replay it there too
                self._journal.append(write)
                self._journal_chunks += len(write.points) if isinstance(write, UpsertChunks) else 1
                if self._journal_chunks > self._index.threshold:
                    self._journal, self._journal_overflowed = None, True
        if self._indexer is not None:
            self._indexer.notify_write()

    async def search(self, query: SearchQuery) -> list[ScoredPassage]:
        # On the event loop, not in a worker thread: the engine keeps the GIL for the whole call
        # (see the module docstring), so a thread would not let the loop run meanwhile, and the hop
        # there and back cost more CPU than a search of a small store (~0.1 ms each).
        if query.fused_by_relative_score:
            return self._relative_search(query)
        request = search_request(query, self._dense_params)
        with self._reading() as shard:
            hits: list[Any] = shard.query(request)
        return [fields.scored_passage(hit.id, hit.score, hit.payload) for hit in hits]

    def _relative_search(self, query: SearchQuery) -> list[ScoredPassage]:
        """Hybrid with `relative` fusion: both candidate lists in one batch, fused
        (`domain.fusion`), then the payloads of the best `top_k` only."""
        dense, sparse = relative_requests(query, self._dense_params)
        with self._reading() as shard:
            dense_hits, sparse_hits = shard.query_batch(qe.QueryBatchRequest([dense, sparse]))
            fused = relative_score_fusion(
                [(hit.id, hit.score) for hit in dense_hits],
                [(hit.id, hit.score) for hit in sparse_hits],
                query.fusion.dense_weight,
                query.fusion.sparse_weight,
                query.top_k,
            )
            records = shard.retrieve([point_id for point_id, _ in fused], True, False) if fused else []
        payloads = {record.id: record.payload for record in records}
        return [
            fields.scored_passage(point_id, score, payloads[point_id])
            for point_id, score in fused
            if point_id in payloads
        ]

    async def delete_document(self, tenant_id: str, document_id: str, keep_below_index: int = 0) -> None:
        await asyncio.to_thread(self._write, DeleteChunks(tenant_id, document_id, keep_below_index))

    async def count(self, tenant_id: str | None = None) -> int:
        flt = qe.Filter(must=[tenant_condition(tenant_id)]) if tenant_id is not None else None
        request = qe.CountRequest(exact=True, filter=flt)

        def run() -> int:
            with self._reading() as shard:
                return int(shard.count(request))

        return await asyncio.to_thread(run)

    # The background index build (`edge_indexer.IndexableStore`).

    def index_status(self) -> IndexStatus:
        with self._reading() as shard:
            info = shard.info()
        indexer = self._indexer
        return IndexStatus(
            points=int(info.points_count),
            unindexed=unindexed_chunks(int(info.points_count), int(info.indexed_vectors_count)),
            building=indexer is not None and indexer.building,
            builds=tuple(indexer.builds) if indexer is not None else (),
            last_error=indexer.last_error if indexer is not None else "",
        )

    def unindexed_chunks(self) -> int:
        return self.index_status().unindexed

    def copy_for_build(self, staging: Path) -> None:
        with self._write_lock:
            self._opened().flush()
            # The write-ahead log comes along: it carries the operation numbers, without which
            # the engine would take the journal replayed later for stale writes.
            shutil.copytree(self._path, staging)
            self._journal, self._journal_chunks, self._journal_overflowed = [], 0, False

    def swap_in_build(self, dirs: SwapDirs) -> int:
        config = edge_config(self._dimension, self._index)
        with self._write_lock:
            journal, self._journal = self._journal, None
            if journal is None:
                raise edge_index_process.IndexBuildFailed(
                    "more than RAG_VECTOR_INDEX_THRESHOLD chunks were written during the build; a new "
                    "build starts once writes settle"
                    if self._journal_overflowed
                    else "the build was abandoned"
                )
            if journal:  # in a process: loading and flushing a store hold the GIL
                edge_index_process.replay(dirs.staging, journal)
            swap_in(dirs)  # the old shard stays open (renamed) for the searches still running on it
            fresh = qe.EdgeShard.load(str(self._path), config)
            with self._readers_changed:
                old, self._shard = self._shard, fresh
                self._readers_changed.wait_for(lambda: id(old) not in self._readers)
            old.close()
            discard_backup(dirs)
        return len(journal)

    def abandon_build(self) -> None:
        with self._write_lock:
            self._journal = None
