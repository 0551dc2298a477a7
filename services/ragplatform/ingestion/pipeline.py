"""One job's work: parse -> chunk -> embed in batches -> index. No queue, no gRPC.

Indexing is idempotent (deterministic point ids), so running a job twice never duplicates a
chunk; when a document shrinks, the chunks past its new end are removed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from ragplatform.backends.embedders.base import Embedder
from ragplatform.backends.embedders.tokens import EstimatedTokenCount
from ragplatform.domain.chunk_context import (
    DEFAULT_DOCUMENT_WEIGHT,
    DEFAULT_HEADING_WEIGHT,
    DEFAULT_SECTIONED_HEADING_WEIGHT,
    chunk_sections,
    contextualized,
    document_centroid,
    document_heading,
    fold_vectors,
    section_heading,
)
from ragplatform.domain.chunking import chunk_text
from ragplatform.domain.errors import DocumentRejected
from ragplatform.domain.models import Chunk, ChunkPoint, Document, Job
from ragplatform.domain.parsing import ParsedDocument, parse_document
from ragplatform.ingestion.parse_sandbox import ParseDocument, parse_in_process

# Texts up to this long are chunked on the event loop (about a millisecond of work).
INLINE_CHUNKING_CHARS = 8_000

# Stores embedded chunks (through the worker's IndexBatcher, the retrieval service's UpsertDocumentsChunks).
IndexChunks = Callable[[Document, list[ChunkPoint]], Awaitable[None]]
# Removes the document's chunks with index >= the given count.
TrimChunks = Callable[[Document, int], Awaitable[None]]
# Records progress: (chunks_total, chunks_done).
ReportProgress = Callable[[int, int], Awaitable[None]]


@dataclass(frozen=True)
class ChunkingPolicy:
    chunk_tokens: int
    overlap_tokens: int
    embed_batch_size: int
    # Weight of the document heading's own embedding in each chunk's vector (0: not folded in).
    heading_weight: float = DEFAULT_HEADING_WEIGHT
    # The same for a document that marks its sections (HTML and Markdown headings).
    sectioned_heading_weight: float = DEFAULT_SECTIONED_HEADING_WEIGHT
    # Weight of the mean of the document's chunk embeddings in each chunk's vector (0: not folded
    # in). Above 0 the whole document is embedded before its first chunk is indexed.
    document_weight: float = DEFAULT_DOCUMENT_WEIGHT


def heading_weight_for(parsed: ParsedDocument, policy: ChunkingPolicy) -> float:
    """How much the document heading's embedding leans each of its chunks' vectors: a document
    that marks sections has its own weight (its chunks' text already names page and section)."""
    return policy.sectioned_heading_weight if parsed.sections else policy.heading_weight


def split_document(data: bytes, document: Document, embedder: Embedder, policy: ChunkingPolicy) -> list[Chunk]:
    """Parse (in this process, unbounded: for trusted files) and chunk."""
    return chunk_document(parse_document(data, document.filename, document.content_type), document, embedder, policy)


def chunk_document(
    parsed: ParsedDocument, document: Document, embedder: Embedder, policy: ChunkingPolicy
) -> list[Chunk]:
    """Chunk a parsed document; each chunk carries the document's heading. Raise
    `DocumentRejected` when nothing indexable is left."""
    chunks = chunk_text(
        parsed.text,
        embedder.count_tokens,
        policy.chunk_tokens,
        policy.overlap_tokens,
        additive=isinstance(embedder, EstimatedTokenCount),
    )
    if not chunks:
        raise DocumentRejected(
            f"{document.filename} contains no text to index (it may be scanned images or only markup); "
            "upload a text-based version"
        )
    heading = document_heading(parsed)
    sections = chunk_sections([chunk.offset for chunk in chunks], parsed.sections)
    # Built directly: dataclasses.replace inspects the fields on every call (~3 % of a worker's CPU).
    return [
        Chunk(chunk.index, chunk.text, chunk.token_count, section_heading(heading, section), chunk.offset)
        for chunk, section in zip(chunks, sections, strict=True)
    ]


def may_hold_stale_chunks(document: Document, job: Job) -> bool:
    """Whether the index may hold chunks of `document` past the end of this job's content, so
    the job must trim them. Not when the job is the document's first (the store gives a document
    and the job of the upload that created it one timestamp) in its first attempt (an earlier
    attempt of the same content under other chunking settings could have written more chunks):
    then no earlier version or attempt ever wrote a chunk of this document. Skipping the trim
    saves a vector store delete-by-filter per new document."""
    return not (job.created_at == document.created_at and job.attempts <= 1)


async def _no_trim(document: Document, keep_below: int) -> None:
    """Nothing to trim (see `may_hold_stale_chunks`)."""


def trim_for(document: Document, job: Job, trim: TrimChunks) -> TrimChunks:
    """`trim`, or a no-op when the job's document cannot hold stale chunks."""
    return trim if may_hold_stale_chunks(document, job) else _no_trim


async def ingest_document(
    data: bytes,
    document: Document,
    embedder: Embedder,
    policy: ChunkingPolicy,
    index: IndexChunks,
    trim: TrimChunks,
    progress: ReportProgress,
    parse: ParseDocument = parse_in_process,
) -> int:
    """Run the whole pipeline for one document version; return the number of chunks indexed.
    Progress is reported only for a document of several embedding batches, and not after the
    last one (the job's success records it): a small document costs no progress writes."""
    # The worker passes its ParseSandbox: a hostile file costs bounded time and memory.
    parsed = await parse(data, document.filename, document.content_type)
    # Chunking counts every token: CPU-bound, so off the event loop - except for a small text,
    # where the hop to a thread (and back through the GIL) costs more than the work.
    if len(parsed.text) <= INLINE_CHUNKING_CHARS:
        chunks = chunk_document(parsed, document, embedder, policy)
    else:
        chunks = await asyncio.to_thread(chunk_document, parsed, document, embedder, policy)
    total = len(chunks)
    report = total > policy.embed_batch_size
    if report:
        await progress(total, 0)
    done = 0
    # The document's own heading (a chunk's may also name its section) leans every chunk vector.
    heading = document_heading(parsed)
    heading_weight = heading_weight_for(parsed, policy)
    heading_vector: list[float] = []
    # With a document weight every chunk is embedded before the first is indexed (the centroid
    # needs them all); else each batch is indexed as soon as it is embedded.
    whole_document = policy.document_weight > 0
    embedded: list[tuple[list[Chunk], NDArray[np.float64]]] = []

    async def index_embedded(centroid: list[float]) -> None:
        nonlocal done
        for batch, vectors in embedded:
            folded = fold_vectors(
                fold_vectors(vectors, heading_vector, heading_weight), centroid, policy.document_weight
            )
            await index(document, _points(document, batch, folded.tolist()))
            done += len(batch)
            if report and done < total:
                await progress(total, done)
        embedded.clear()

    for start in range(0, total, policy.embed_batch_size):
        batch = chunks[start : start + policy.embed_batch_size]
        texts = [contextualized(c.heading, c.text) for c in batch]
        if start == 0 and heading and heading_weight > 0:
            # One more short text per document, in the first batch (no extra embedding call).
            *vectors, heading_vector = await embedder.embed_documents([*texts, heading])
        else:
            vectors = await embedder.embed_documents(texts)
        embedded.append((batch, np.asarray(vectors, dtype=np.float64)))
        if not whole_document:
            await index_embedded([])
    if whole_document:
        await index_embedded(document_centroid(np.vstack([vectors for _, vectors in embedded])))
    await trim(document, total)
    return total


def _points(document: Document, batch: list[Chunk], vectors: list[list[float]]) -> list[ChunkPoint]:
    return [
        ChunkPoint(
            tenant_id=document.tenant_id,
            document_id=document.document_id,
            filename=document.filename,
            chunk_index=chunk.index,
            text=chunk.text,
            vector=vector,
            content_hash=document.content_hash,
            metadata=document.metadata,
            heading=chunk.heading,
        )
        for chunk, vector in zip(batch, vectors, strict=True)
    ]
