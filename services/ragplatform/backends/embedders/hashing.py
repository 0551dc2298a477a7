"""Feature-hashing embedder: lexical, dependency-free, fast, deterministic across processes.

Each text becomes the bag of its lower-cased word unigrams and bigrams; every feature is hashed
(BLAKE2b, never Python's per-process salted `hash()`) to one of `dimension` buckets with a sign
taken from the same digest, weighted by 1 + log(term frequency), and the vector is L2-normalised.
Texts sharing words get positive cosine similarity; it knows nothing of synonyms or paraphrase,
so it serves tests and machines without torch, not relevance-sensitive deployments.

Callers may rely on: the same text gives the same vector in any process on any machine (for a given
dimension); every vector has unit length (text without a word maps to one fixed unit vector).
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import math
import operator
import re
from collections import Counter
from functools import lru_cache

from ragplatform.backends.embedders.tokens import EstimatedTokenCount

_WORDS = re.compile(r"\w+")
# Stands in for a text without any word, so that it still gets a unit-length vector.
_EMPTY_FEATURE = "\x00empty"
# Below this many characters a batch is embedded on the event loop: a thread hop costs more
# (a small document's whole batch, ~6 chunks, is about a millisecond of work).
_INLINE_CHARS = 8_000


@lru_cache(maxsize=200_000)
def _bucket(feature: str, dimension: int) -> tuple[int, float]:
    digest = hashlib.blake2b(feature.encode("utf-8"), digest_size=8).digest()
    value = int.from_bytes(digest, "little")
    # Low bit picks the sign (signed hashing makes collisions cancel on average instead of adding up).
    sign = 1.0 if value & 1 else -1.0
    return (value >> 1) % dimension, sign


def _features(text: str) -> Counter[str]:
    words = _WORDS.findall(text.lower())
    features: Counter[str] = Counter(words)
    features.update(map(" ".join, itertools.pairwise(words)))  # bigrams "a b"
    return features


def hash_embed(text: str, dimension: int) -> list[float]:
    """The unit-length feature-hashing vector of `text` (pure function, see module docstring).
    Written for the interpreter (C-level map and zip, no log for a feature seen once): the worker
    embeds every chunk with it when RAG_EMBEDDER=hashing. The arithmetic, and so every bit of
    the result, is what the plain loop computes."""
    features = _features(text) or Counter([_EMPTY_FEATURE])
    vector = [0.0] * dimension
    log = math.log
    for feature, count in features.items():
        index, sign = _bucket(feature, dimension)
        vector[index] += sign if count == 1 else sign * (1.0 + log(count))
    norm = math.sqrt(sum(map(operator.mul, vector, vector)))
    if norm == 0.0:  # every feature cancelled out in colliding buckets: astronomically rare
        return hash_embed(text + " " + _EMPTY_FEATURE, dimension)
    return list(map(norm.__rtruediv__, vector))


class HashingEmbedder(EstimatedTokenCount):
    """`Embedder` by feature hashing into `dimension` dimensions (RAG_EMBEDDING_DIMENSION)."""

    def __init__(self, dimension: int) -> None:
        if dimension < 8:
            raise ValueError(f"hashing embedder dimension must be at least 8, got {dimension}")
        self._dimension = dimension

    @property
    def name(self) -> str:
        return f"hashing-{self._dimension}"

    @property
    def dimension(self) -> int:
        return self._dimension

    def _embed_all(self, texts: list[str]) -> list[list[float]]:
        return [hash_embed(text, self._dimension) for text in texts]

    async def embed_documents(self, texts: list[str]) -> list[list[float]]:
        if sum(len(text) for text in texts) <= _INLINE_CHARS:
            return self._embed_all(texts)
        return await asyncio.to_thread(self._embed_all, texts)

    async def embed_query(self, text: str) -> list[float]:
        return (await self.embed_documents([text]))[0]

    async def close(self) -> None:
        return None  # nothing held open (a loaded model stays shared by the process)
