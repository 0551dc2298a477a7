"""The embedding model a vector store records: the pure decision (`embedder_record`) and the
embedded store (qdrant-edge, the real engine, on a temporary directory) that keeps it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ragplatform.backends.vectors.embedded_edge import EdgeVectorStore
from ragplatform.backends.vectors.embedder_record import model_to_record
from ragplatform.domain.errors import FailedPrecondition
from ragplatform.domain.models import ChunkPoint

MINILM = "all-MiniLM-L6-v2"
E5 = "multilingual-e5-small-q4"
DIM = 4


def record(recorded: str | None, configured: str, has_vectors: bool) -> str:
    return model_to_record("the store S", recorded, configured, has_vectors, "start over")


def test_a_new_or_matching_store_records_the_configured_model() -> None:
    assert record(None, E5, has_vectors=False) == E5
    assert record(MINILM, MINILM, has_vectors=True) == MINILM


def test_another_recorded_model_is_refused_naming_the_setting_that_keeps_it() -> None:
    with pytest.raises(FailedPrecondition) as caught:
        record(MINILM, E5, has_vectors=True)
    message = caught.value.message
    assert f"the store S holds vectors of the embedding model {MINILM}" in message
    assert "RAG_EMBEDDER=minilm" in message
    assert "start over" in message
    with pytest.raises(FailedPrecondition, match="RAG_EMBEDDER=hashing with RAG_EMBEDDING_DIMENSION=384"):
        record("hashing-384", MINILM, has_vectors=True)
    with pytest.raises(FailedPrecondition, match="RAG_EMBEDDING_MODEL=bge-m3"):
        record("openai:bge-m3", E5, has_vectors=False)


def test_an_unrecorded_filled_store_is_refused_only_to_a_model_newer_than_the_record() -> None:
    # Filled before stores recorded their model: by MiniLM (the default then) or another setting
    # of then, which is taken at its word; e5-small did not exist, so it cannot have filled it.
    assert record(None, MINILM, has_vectors=True) == MINILM
    assert record(None, "hashing-384", has_vectors=True) == "hashing-384"
    with pytest.raises(FailedPrecondition, match=r"most likely by all-MiniLM-L6-v2.*RAG_EMBEDDER=minilm"):
        record(None, E5, has_vectors=True)


def a_point() -> ChunkPoint:
    return ChunkPoint("t", "d", "d.md", 0, "text", [1.0, 0.0, 0.0, 0.0])


async def test_the_embedded_store_records_its_model_and_refuses_another(tmp_path: Path) -> None:
    path = tmp_path / "vectors"
    store = EdgeVectorStore(path)
    await store.open(DIM, MINILM)
    await store.upsert([a_point()])
    await store.close()
    assert json.loads((path / "embedder.json").read_text()) == {"model": MINILM}

    with pytest.raises(FailedPrecondition, match=f"holds vectors of the embedding model {MINILM}"):
        await EdgeVectorStore(path).open(DIM, E5)
    # The refused open released the store: the right model opens it, vectors intact.
    again = EdgeVectorStore(path)
    await again.open(DIM, MINILM)
    assert await again.count("t") == 1
    await again.close()


async def test_an_unrecorded_embedded_store_is_adopted_or_refused(tmp_path: Path) -> None:
    filled, empty = tmp_path / "filled", tmp_path / "empty"
    for path, points in ((filled, [a_point()]), (empty, [])):
        legacy = EdgeVectorStore(path)
        await legacy.open(DIM)  # as before the record: no model given, none written
        await legacy.upsert(points)
        await legacy.close()
        assert not (path / "embedder.json").exists()

    with pytest.raises(FailedPrecondition, match="RAG_EMBEDDER=minilm"):
        await EdgeVectorStore(filled).open(DIM, E5)
    assert not (filled / "embedder.json").exists()
    adopted = EdgeVectorStore(filled)
    await adopted.open(DIM, MINILM)
    await adopted.close()
    assert json.loads((filled / "embedder.json").read_text()) == {"model": MINILM}

    fresh = EdgeVectorStore(empty)  # nothing in it to mix with: the new model takes it
    await fresh.open(DIM, E5)
    await fresh.close()
    assert json.loads((empty / "embedder.json").read_text()) == {"model": E5}
