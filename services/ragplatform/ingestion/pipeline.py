"""One job's work: parse -> chunk -> embed in batches -> index. No queue, no gRPC.

Indexing is idempotent (deterministic point ids), so running a job twice never duplicates a
chunk; when a document shrinks, the chunks past its new end are removed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from ragplatform.backends.embedders.base import Embedder
from ragplatform.domain.chunking import chunk_text
from ragplatform.domain.errors import DocumentRejected
from ragplatform.domain.models import Chunk, ChunkPoint, Document
from ragplatform.domain.parsing import parse_document

# Stores embedded chunks (the retrieval service's UpsertChunks).
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


def split_document(data: bytes, document: Document, embedder: Embedder, policy: ChunkingPolicy) -> list[Chunk]:
    """Parse and chunk; raise `DocumentRejected` when nothing indexable is left."""
    parsed = parse_document(data, document.filename, document.content_type)
    chunks = chunk_text(parsed.text, embedder.count_tokens, policy.chunk_tokens, policy.overlap_tokens)
    if not chunks:
        raise DocumentRejected(
            f"{document.filename} contains no text to index (it may be scanned images or only markup); "
            "upload a text-based version"
        )
    return chunks


async def ingest_document(
    data: bytes,
    document: Document,
    embedder: Embedder,
    policy: ChunkingPolicy,
    index: IndexChunks,
    trim: TrimChunks,
    progress: ReportProgress,
) -> int:
    """Run the whole pipeline for one document version; return the number of chunks indexed."""
    # Parsing (PDF especially) is CPU-bound: keep it off the event loop.
    chunks = await asyncio.to_thread(split_document, data, document, embedder, policy)
    total = len(chunks)
    await progress(total, 0)
    done = 0
    for start in range(0, total, policy.embed_batch_size):
        batch = chunks[start : start + policy.embed_batch_size]
        vectors = await embedder.embed_documents([c.text for c in batch])
        points = [
            ChunkPoint(
                tenant_id=document.tenant_id,
                document_id=document.document_id,
                filename=document.filename,
                chunk_index=chunk.index,
                text=chunk.text,
                vector=vector,
                content_hash=document.content_hash,
                metadata=document.metadata,
            )
            for chunk, vector in zip(batch, vectors, strict=True)
        ]
        await index(document, points)
        done += len(batch)
        await progress(total, done)
    await trim(document, total)
    return total
