"""Text embedders. Adapters: `minilm.py` (all-MiniLM-L6-v2 shipped in a PyPI package, local,
the embedded default), `openai_compatible.py` (production), `hashing.py` (feature hashing:
dependency-free and fast, lexical only; for tests and machines without torch)."""

from __future__ import annotations

from typing import Protocol


class Embedder(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def dimension(self) -> int: ...

    async def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """One unit-length vector per text, in order."""

    async def embed_query(self, text: str) -> list[float]: ...

    def count_tokens(self, text: str) -> int:
        """Tokens as this embedder counts them (used by the chunker)."""

    async def close(self) -> None:
        """Release connections (an endpoint's HTTP pool); the embedder is not used after."""
