"""One job's work (parse -> chunk -> embed in batches -> index -> trim) with the real parsers,
the hashing embedder and, where indexing is checked end to end, the real embedded vector store.
The `Recorder` below is a plain function pair that keeps what the pipeline hands it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ragplatform.backends.embedders.hashing import HashingEmbedder
from ragplatform.backends.vectors.embedded_edge import EdgeVectorStore
from ragplatform.domain.chunk_context import DEFAULT_HEADING_WEIGHT, document_centroid, fold_heading
from ragplatform.domain.errors import DocumentRejected
from ragplatform.domain.models import ChunkPoint, Document, Job, JobState, SearchQuery
from ragplatform.ingestion.pipeline import ChunkingPolicy, ingest_document, may_hold_stale_chunks, split_document

DOCS = Path(__file__).resolve().parents[2] / "fixtures" / "docs"
DIMENSION = 64
NOW = datetime(2026, 11, 23, tzinfo=UTC)


def document(filename: str, content_type: str = "", content_hash: str = "hash-1") -> Document:
    return Document(
        document_id="doc-1",
        tenant_id="acme",
        filename=filename,
        content_type=content_type,
        content_hash=content_hash,
        size_bytes=0,
        blob_key="blob",
        metadata={"team": "pumps"},
        chunk_count=0,
        created_at=NOW,
        updated_at=NOW,
    )


@dataclass
class Recorder:
    """Keeps every call the pipeline makes, in order."""

    events: list[tuple[str, object]] = field(default_factory=list)
    batches: list[list[ChunkPoint]] = field(default_factory=list)

    async def index(self, doc: Document, points: list[ChunkPoint]) -> None:
        self.batches.append(points)
        self.events.append(("index", len(points)))

    async def trim(self, doc: Document, keep_below: int) -> None:
        self.events.append(("trim", keep_below))

    async def progress(self, total: int, done: int) -> None:
        self.events.append(("progress", (total, done)))


def numbered_sentences(count: int) -> bytes:
    return "\n\n".join(f"Paragraph {i} says the Zephyr-9 pump part {i} is fine." for i in range(count)).encode()


SMALL_CHUNKS = ChunkingPolicy(chunk_tokens=16, overlap_tokens=0, embed_batch_size=2)


def test_split_document_parses_and_chunks_a_real_document() -> None:
    data = (DOCS / "corpus" / "zephyr-9-pump-manual.md").read_bytes()
    embedder = HashingEmbedder(DIMENSION)
    chunks = split_document(data, document("zephyr-9-pump-manual.md"), embedder, ChunkingPolicy(64, 8, 16))
    assert len(chunks) > 1
    assert [c.index for c in chunks] == list(range(len(chunks)))
    assert all(0 < embedder.count_tokens(c.text) <= 64 for c in chunks)
    assert any("42 bar" in c.text for c in chunks)


@pytest.mark.parametrize(
    ("filename", "data", "reason"),
    [
        ("corrupt.pdf", (DOCS / "invalid" / "corrupt.pdf").read_bytes(), "PDF"),
        ("scanned-image-only.pdf", (DOCS / "invalid" / "scanned-image-only.pdf").read_bytes(), "OCR"),
        ("blank.txt", b"   \n\n  ", "empty"),
        ("markup.html", b"<html><head><script>var x = 1;</script></head><body></body></html>", "no readable text"),
    ],
)
def test_documents_without_indexable_text_are_rejected_with_a_reason(filename: str, data: bytes, reason: str) -> None:
    with pytest.raises(DocumentRejected) as info:
        split_document(data, document(filename), HashingEmbedder(DIMENSION), SMALL_CHUNKS)
    assert reason in info.value.message


async def test_chunks_are_embedded_in_batches_with_progress_then_trimmed() -> None:
    recorder = Recorder()
    doc = document("parts.txt")
    total = await ingest_document(
        numbered_sentences(5),
        doc,
        HashingEmbedder(DIMENSION),
        SMALL_CHUNKS,
        recorder.index,
        recorder.trim,
        recorder.progress,
    )
    assert total == 5
    assert recorder.events == [
        ("progress", (5, 0)),
        ("index", 2),
        ("progress", (5, 2)),
        ("index", 2),
        ("progress", (5, 4)),
        ("index", 1),  # the last batch reports no progress: the job's success records it
        ("trim", 5),  # after every batch: chunks past the new end go only once the new ones exist
    ]
    points = [p for batch in recorder.batches for p in batch]
    assert [p.chunk_index for p in points] == [0, 1, 2, 3, 4]
    for point in points:
        assert (point.tenant_id, point.document_id, point.filename) == ("acme", "doc-1", "parts.txt")
        assert point.content_hash == "hash-1"
        assert point.metadata == {"team": "pumps"}
        assert len(point.vector) == DIMENSION
    assert "Paragraph 3" in points[3].text


async def test_a_single_batch_document_costs_no_progress_writes() -> None:
    recorder = Recorder()
    one_batch = ChunkingPolicy(chunk_tokens=16, overlap_tokens=0, embed_batch_size=32)
    total = await ingest_document(
        numbered_sentences(5),
        document("parts.txt"),
        HashingEmbedder(DIMENSION),
        one_batch,
        recorder.index,
        recorder.trim,
        recorder.progress,
    )
    assert recorder.events == [("index", total), ("trim", total)]


def job_of(doc: Document, created_at: datetime, attempts: int) -> Job:
    return Job("job-1", doc.tenant_id, doc.document_id, JobState.RUNNING, "", attempts, 0, 0, created_at, created_at)


def test_only_a_documents_first_job_in_its_first_attempt_skips_the_trim() -> None:
    doc = document("parts.txt")
    assert not may_hold_stale_chunks(doc, job_of(doc, NOW, attempts=1))  # the upload that created it
    # A later upload of the same name: the previous version's chunks may reach further.
    assert may_hold_stale_chunks(doc, job_of(doc, NOW + timedelta(seconds=1), attempts=1))
    # A retry: an earlier attempt (perhaps under other chunk settings) may have written more.
    assert may_hold_stale_chunks(doc, job_of(doc, NOW, attempts=2))


async def test_running_a_job_twice_gives_the_same_point_ids() -> None:
    runs: list[list[str]] = []
    for _ in range(2):
        recorder = Recorder()
        await ingest_document(
            numbered_sentences(4),
            document("parts.txt"),
            HashingEmbedder(DIMENSION),
            SMALL_CHUNKS,
            recorder.index,
            recorder.trim,
            recorder.progress,
        )
        runs.append([p.point_id for batch in recorder.batches for p in batch])
    assert runs[0] == runs[1]
    assert len(set(runs[0])) == 4


@pytest.fixture
async def vectors(tmp_path: Path) -> AsyncIterator[EdgeVectorStore]:
    store = EdgeVectorStore(tmp_path / "vectors")
    await store.open(DIMENSION)
    try:
        yield store
    finally:
        await store.close()


async def ingest_into(vectors: EdgeVectorStore, data: bytes, content_hash: str) -> int:
    async def index(doc: Document, points: list[ChunkPoint]) -> None:
        await vectors.upsert(points)

    async def trim(doc: Document, keep_below: int) -> None:
        await vectors.delete_document(doc.tenant_id, doc.document_id, keep_below)

    async def progress(total: int, done: int) -> None:
        return None

    doc = document("parts.txt", content_hash=content_hash)
    return await ingest_document(data, doc, HashingEmbedder(DIMENSION), SMALL_CHUNKS, index, trim, progress)


async def test_a_shrunken_document_replaces_its_chunks_in_the_vector_store(vectors: EdgeVectorStore) -> None:
    assert await ingest_into(vectors, numbered_sentences(6), "v1") == 6
    assert await vectors.count("acme") == 6
    assert await ingest_into(vectors, numbered_sentences(6), "v1") == 6
    assert await vectors.count("acme") == 6  # a re-run duplicates nothing
    assert await ingest_into(vectors, b"The Zephyr-9 pump was replaced by the Zephyr-10.", "v2") == 1
    assert await vectors.count("acme") == 1
    hits = await vectors.search(
        SearchQuery(tenant_id="acme", vector=await HashingEmbedder(DIMENSION).embed_query("Zephyr-10"), top_k=10)
    )
    assert [h.text for h in hits] == ["The Zephyr-9 pump was replaced by the Zephyr-10."]


async def test_chunks_carry_the_heading_and_their_vectors_lean_towards_it() -> None:
    text = b"DU(1)   User Commands   DU(1)\n\nNAME\n  du - estimate file space usage\n\n" + numbered_sentences(4)
    embedder = HashingEmbedder(DIMENSION)
    folded, unfolded = Recorder(), Recorder()
    for recorder, weight in ((folded, 0.3), (unfolded, 0.0)):
        policy = ChunkingPolicy(
            chunk_tokens=16, overlap_tokens=0, embed_batch_size=2, heading_weight=weight, document_weight=0.0
        )
        await ingest_document(
            text, document("du.1.txt"), embedder, policy, recorder.index, recorder.trim, recorder.progress
        )
    points = [p for batch in folded.batches for p in batch]
    plain = [p for batch in unfolded.batches for p in batch]
    assert {p.heading for p in points} == {"du - estimate file space usage"}
    assert not any(p.text.startswith("du - estimate") for p in points[1:])  # the passage text is the chunk
    # Without folding, the vector is the embedding of heading + chunk text.
    expected = await embedder.embed_documents([f"{p.heading}\n\n{p.text}" for p in plain])
    assert [p.vector for p in plain] == expected
    # With folding, every chunk (in every batch) is closer to the heading's own embedding.
    [heading_vector] = await embedder.embed_documents(["du - estimate file space usage"])

    def similarity(a: list[float], b: list[float]) -> float:
        return sum(x * y for x, y in zip(a, b, strict=True))

    assert len(points) > 2
    for with_fold, without in zip(points, plain, strict=True):
        assert similarity(with_fold.vector, heading_vector) > similarity(without.vector, heading_vector)


async def test_html_chunks_name_their_section_and_lean_towards_the_pages_own_heading() -> None:
    body = "".join(f"<h2>{i}. Part {i}</h2><p>" + "The Zephyr-9 pump part is fine. " * 6 + "</p>" for i in (1, 2, 3))
    markup = f"<html><head><title>Pump manual</title></head><body>{body}</body></html>".encode()
    embedder = HashingEmbedder(DIMENSION)
    recorder = Recorder()
    policy = ChunkingPolicy(
        chunk_tokens=24,
        overlap_tokens=0,
        embed_batch_size=64,
        heading_weight=0.0,
        sectioned_heading_weight=1.0,
        document_weight=0.0,
    )
    await ingest_document(
        markup, document("pump.html"), embedder, policy, recorder.index, recorder.trim, recorder.progress
    )
    points = [p for batch in recorder.batches for p in batch]
    headings = [p.heading for p in points]
    assert headings[0] == "Pump manual \u2014 Part 1"
    assert "Pump manual \u2014 Part 3" in headings
    assert headings == sorted(headings)  # in document order
    # The fold leans towards the page's heading, not towards each chunk's section heading.
    [page_vector] = await embedder.embed_documents(["Pump manual"])
    embedded = await embedder.embed_documents([f"{p.heading}\n\n{p.text}" for p in points])
    assert [p.vector for p in points] == [fold_heading(v, page_vector, 1.0) for v in embedded]


async def test_by_default_only_a_document_without_sections_leans_towards_its_heading() -> None:
    embedder = HashingEmbedder(DIMENSION)
    policy = ChunkingPolicy(chunk_tokens=24, overlap_tokens=0, embed_batch_size=64, document_weight=0.0)
    sentences = "The Zephyr-9 pump part is fine. " * 6
    files = {
        "pump.html": f"<html><head><title>Pump manual</title></head><body><h2>Parts</h2><p>{sentences}</p></body>",
        "pump.txt": f"Pump manual\n\n{sentences}",
    }
    for filename, text in files.items():
        recorder = Recorder()
        await ingest_document(
            text.encode(), document(filename), embedder, policy, recorder.index, recorder.trim, recorder.progress
        )
        points = [p for batch in recorder.batches for p in batch]
        embedded = await embedder.embed_documents([f"{p.heading}\n\n{p.text}" for p in points])
        [heading_vector] = await embedder.embed_documents(["Pump manual"])
        folded = [fold_heading(v, heading_vector, DEFAULT_HEADING_WEIGHT) for v in embedded]
        if filename == "pump.html":  # sectioned: its chunks' text names page and section; no fold
            assert [p.vector for p in points] == embedded
        else:
            assert [p.vector for p in points] == folded


async def test_chunk_vectors_lean_towards_their_whole_documents_centroid() -> None:
    embedder = HashingEmbedder(DIMENSION)
    folded, unfolded = Recorder(), Recorder()
    for recorder, weight in ((folded, 0.6), (unfolded, 0.0)):
        policy = ChunkingPolicy(
            chunk_tokens=16, overlap_tokens=0, embed_batch_size=2, heading_weight=0.0, document_weight=weight
        )
        await ingest_document(
            numbered_sentences(6), document("n.txt"), embedder, policy, recorder.index, recorder.trim, recorder.progress
        )
    points = [p for batch in folded.batches for p in batch]
    plain = [p for batch in unfolded.batches for p in batch]
    assert len(folded.batches) > 2  # the centroid spans every batch, not just the one being indexed
    assert [p.chunk_index for p in points] == [p.chunk_index for p in plain]
    centroid = document_centroid([p.vector for p in plain])

    def similarity(a: list[float], b: list[float]) -> float:
        return sum(x * y for x, y in zip(a, b, strict=True))

    assert [p.vector for p in points] == [fold_heading(p.vector, centroid, 0.6) for p in plain]
    for with_fold, without in zip(points, plain, strict=True):
        assert similarity(with_fold.vector, centroid) > similarity(without.vector, centroid)
    # Progress is still reported per indexed batch, none after the last.
    assert [e for e in folded.events if e[0] == "progress"] == [e for e in unfolded.events if e[0] == "progress"]


class CountingHashingEmbedder(HashingEmbedder):
    """The hashing embedder, keeping every text it is asked to count."""

    def __init__(self, dimension: int) -> None:
        super().__init__(dimension)
        self.counted: list[str] = []

    def count_tokens(self, text: str) -> int:
        self.counted.append(text)
        return super().count_tokens(text)


class CountingTokenizerEmbedder:
    """An embedder with a tokenizer of its own (not `EstimatedTokenCount`): the hashing embedder's
    vectors, two tokens a word, every counted text kept."""

    def __init__(self, dimension: int) -> None:
        self._hashing = HashingEmbedder(dimension)
        self.name, self.dimension = "counting", dimension
        self.embed_documents, self.embed_query, self.close = (
            self._hashing.embed_documents,
            self._hashing.embed_query,
            self._hashing.close,
        )
        self.counted: list[str] = []

    def count_tokens(self, text: str) -> int:
        self.counted.append(text)
        return 2 * len(text.split())


def test_chunks_are_counted_whole_only_when_the_embedder_has_a_tokenizer_of_its_own() -> None:
    data = (DOCS / "corpus" / "zephyr-9-pump-manual.md").read_bytes()
    policy = ChunkingPolicy(64, 8, 16)
    estimated = CountingHashingEmbedder(DIMENSION)
    own = CountingTokenizerEmbedder(DIMENSION)
    # Estimated counts add up over words: no chunk is counted again as a whole.
    assert len(split_document(data, document("zephyr-9-pump-manual.md"), estimated, policy)) > 2
    assert all(len(text.split()) == 1 for text in estimated.counted)
    # A tokenizer's count of a chunk may differ from its words' sum: every chunk is counted whole.
    chunks = split_document(data, document("zephyr-9-pump-manual.md"), own, policy)
    assert {chunk.text for chunk in chunks} <= set(own.counted)
