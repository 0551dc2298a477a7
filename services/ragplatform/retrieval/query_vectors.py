"""Query vectors with a small LRU cache in front of the embedder.

Repeated questions are common (a dashboard's fixed searches, the same question asked again, the
benchmarks' and evaluations' question sets), and a query's vector is a pure function of its text,
while computing it is most of a Search's CPU (docs/performance.md). So the last
RAG_QUERY_VECTOR_CACHE_SIZE vectors are kept, keyed by tenant and exact text: a tenant's hit costs
a dictionary lookup and a copy, and no tenant can learn from timing which texts another one searched.

Callers may rely on: `vector(tenant, text)` returns what `embedder.embed_query(text)` returns (a
fresh list each call: the caller may keep or change it); at most `size` vectors are kept, the least
recently used going first; size 0 keeps none. The vectors are stored as float64 arrays (~3 KB for
384 dimensions), so the default 1,024 entries hold ~3 MB.
"""

from __future__ import annotations

from array import array
from collections import OrderedDict

from ragplatform.backends.embedders.base import Embedder


class QueryVectors:
    """`embed_query` behind a bounded LRU cache (see the module docstring)."""

    def __init__(self, embedder: Embedder, size: int) -> None:
        self._embedder = embedder
        self._size = size
        self._cache: OrderedDict[tuple[str, str], array[float]] = OrderedDict()
        self.hits = 0
        self.misses = 0

    async def vector(self, tenant_id: str, text: str) -> list[float]:
        key = (tenant_id, text)
        cached = self._cache.get(key)
        if cached is not None:
            self._cache.move_to_end(key)
            self.hits += 1
            return cached.tolist()
        self.misses += 1
        vector = await self._embedder.embed_query(text)
        if self._size > 0:
            self._cache[key] = array("d", vector)
            if len(self._cache) > self._size:
                self._cache.popitem(last=False)
        return vector
