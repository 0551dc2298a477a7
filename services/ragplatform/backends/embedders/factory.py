"""Pick the embedder RAG_EMBEDDER names. Adapters are imported only when chosen, so a process
never loads torch or the `openai` package it does not use."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Literal

from ragplatform.backends.embedders.base import Embedder
from ragplatform.core.settings import EmbedderSettings


def make_embedder(settings: EmbedderSettings) -> Embedder:
    """The configured embedder, not yet loaded (models load on first use).

    Raises `FailedPrecondition` when `minilm` or `e5-small` is chosen and the local-embeddings
    extra is missing (the message names the install command and the alternatives).
    """
    if settings.embedder == "hashing":
        from ragplatform.backends.embedders.hashing import HashingEmbedder

        return HashingEmbedder(settings.embedding_dimension)
    if settings.embedder == "minilm":
        return _shared_minilm(settings.minilm_query_runtime, settings.model_cache, settings.minilm_query_precision)
    if settings.embedder == "e5-small":
        return _shared_e5_small()
    from ragplatform.backends.embedders.openai_compatible import OpenAIEmbedder

    return OpenAIEmbedder(settings)


@functools.cache
def _shared_minilm(
    query_runtime: Literal["onnx", "torch"], cache_dir: Path, query_precision: Literal["fp32", "int8"] = "fp32"
) -> Embedder:
    """One MiniLM per process: services sharing a process (`ragplatform dev`) share the model in
    memory and its one-encode-at-a-time lock, instead of loading it twice and thrashing."""
    from ragplatform.backends.embedders.minilm import MiniLMEmbedder

    return MiniLMEmbedder(query_runtime=query_runtime, cache_dir=cache_dir, query_precision=query_precision)


@functools.cache
def _shared_e5_small() -> Embedder:
    """One e5-small per process, for the same reasons as `_shared_minilm`."""
    from ragplatform.backends.embedders.e5_small import E5SmallEmbedder

    return E5SmallEmbedder()
