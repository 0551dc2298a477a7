"""The bounds every parser works within, so one hostile file cannot take a worker's memory or time.

Time and memory are bounded around the parser (the ingestion worker's parse sandbox); the limits
here are the ones a parser checks itself, because only it knows how much a file expands to.
"""

from __future__ import annotations

from dataclasses import dataclass

MIB = 1024 * 1024


@dataclass(frozen=True)
class ParseLimits:
    """`max_content_bytes`: most bytes a document's compressed parts may expand to (PDF page
    content streams, summed over the document; also the cap for any single stream).
    `max_pages`: most pages of a paged format. Settings: RAG_PARSE_MAX_CONTENT_MB and
    RAG_PARSE_MAX_PAGES."""

    max_content_bytes: int = 64 * MIB
    max_pages: int = 2000


DEFAULT_LIMITS = ParseLimits()
