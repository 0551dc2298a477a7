"""The document context a chunk carries into its embedding and its sparse vector.

A chunk cut from the middle of a manual page or a module's reference rarely names what it
belongs to ("-k, --keep: keep input files"). Prepending its document's heading - the title, or
the "name - summary" line most reference texts start with - to the text that is embedded and
indexed lets a question about the task find the right document's chunks. Measured on the
manual-page benchmark (bench/retrieval_quality.py): dense hit@1 74.5 -> 83.0. The passage text
returned to callers is the chunk alone; the heading is stored beside it.

Each chunk vector is also folded towards its heading's embedding and towards its whole
document's centroid (the mean of its chunk embeddings; no extra model call), so that a chunk
reflects what its document is about: hits are judged by document. Measured on both benchmark
corpora (bench/retrieval_quality.py, default hybrid hit@1, document weight 0 -> 0.6): manual
pages 85.8 -> 87.2, pydoc 82.9 -> 85.4.

A chunk of a document that marks its sections (HTML, Markdown) also names the section it starts
in (`section_heading`, `chunk_sections`): on the two HTML manuals of the benchmark, first
citation 69.2 -> 71.3 (SQLite) and hit@1 78.3 -> 79.7 (PostgreSQL), nothing lower
(docs/retrieval.md, "Section headings").
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from ragplatform.domain.parsers.document import ParsedDocument

MAX_HEADING_CHARS = 120
DEFAULT_HEADING_WEIGHT = 0.3
# The heading fold for a document that marks its sections (HTML, Markdown): its chunks' embedded
# text already names the page and the section, and leaning every section towards the page's title
# blurred them together (docs/retrieval.md, "No heading fold for sectioned documents").
DEFAULT_SECTIONED_HEADING_WEIGHT = 0.0
DEFAULT_DOCUMENT_WEIGHT = 0.6
_LINES_SCANNED = 20
# "du - estimate file space usage", "json - JSON encoder and decoder", "ls, dir - list ...".
_NAME_SUMMARY = re.compile(r"^[\w.+\-]+(?:\s*,\s*[\w.+\-]+)*\s+[-\u2013\u2014]\s+\S")
# A title's leading section label: "5.6. ", "5.6 ", "F.3. ", "IV. ", "Chapter 20. ", "Part I. ",
# "Appendix F. ", "§ 4.2 ". One level needs its dot ("5. Setup"), so "A Guide", "3 Ways" and "E. coli" stay.
_SECTION_LABEL = re.compile(
    r"^(?:(?:chapter|part|section|appendix|§)\s*(?:\d+|[A-Z]|[IVXLC]+)(?:\.\d+)*\.?"
    r"|(?:\d+|[A-Z]|[IVXLC]+)(?:\.\d+)+\.?"
    r"|(?:\d+|[IVXLC]{2,})\.)\s+(?=\S)",
    re.IGNORECASE,
)


def document_heading(parsed: ParsedDocument) -> str:
    """The heading of a document: its own title when the format has one (HTML, Markdown, PDF
    metadata), else the first "name - summary" line among its first lines, else its first
    line; at most `MAX_HEADING_CHARS` characters, whitespace collapsed. Pure."""
    if parsed.title.strip():
        title = _without_section_label(parsed.title)
        if parsed.parent_title.strip():
            title = f"{title} ({_without_section_label(parsed.parent_title)})"
        return _shorten(title)
    lines = [line for line in (raw.strip() for raw in parsed.text.splitlines()) if line][:_LINES_SCANNED]
    for line in lines:
        if _NAME_SUMMARY.match(line):
            return _shorten(line)
    return _shorten(lines[0]) if lines else ""


def _without_section_label(title: str) -> str:
    """ "5.6. Modifying Tables" -> "Modifying Tables": the label says where a section sits in its
    book, not what it is about; every page of a numbered manual carries one, which makes their
    headings' embeddings alike. A title that is nothing but a label is kept."""
    stripped = _SECTION_LABEL.sub("", title.strip(), count=1)
    return stripped if stripped.strip() else title


def section_heading(heading: str, section: str) -> str:
    """A chunk's heading: its document's `heading`, and the section it starts in (label dropped)
    after a dash when the document marks sections and the section says more than the heading
    ("Transaction \u2014 DEFERRED, IMMEDIATE, and EXCLUSIVE transactions"). Pure."""
    section = _without_section_label(section) if section.strip() else ""
    if not section.strip() or " ".join(section.split()).lower() in heading.lower():
        return heading
    return f"{heading} \u2014 {_shorten(section)}" if heading else _shorten(section)


def chunk_sections(offsets: Sequence[int], sections: Sequence[tuple[int, str]]) -> list[str]:
    """For each chunk (by where it starts in the text, in order), the last of `sections`
    ((offset, heading), in order) that starts at or before it; "" before the first. Pure."""
    starts = [start for start, _ in sections]
    return [sections[index - 1][1] if (index := bisect_right(starts, offset)) else "" for offset in offsets]


def contextualized(heading: str, text: str) -> str:
    """The text embedded and indexed for a chunk: its document's heading, a blank line, the chunk."""
    return f"{heading}\n\n{text}" if heading else text


def _shorten(text: str) -> str:
    return " ".join(text.split())[:MAX_HEADING_CHARS]


def fold_vectors(vectors: NDArray[np.float64], context: Sequence[float], weight: float) -> NDArray[np.float64]:
    """Each row of `vectors` + `weight * context`, scaled back to unit length (cosine search), for
    a whole batch at once (numpy: a Python loop over 384 floats per chunk cost a tenth of a
    worker's CPU). Weight 0 (or no context vector) returns `vectors` unchanged."""
    if weight == 0 or len(context) == 0:
        return vectors
    folded = vectors + weight * np.asarray(context, dtype=np.float64)
    norms = np.linalg.norm(folded, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    result: NDArray[np.float64] = folded / norms
    return result


def fold_heading(chunk_vector: list[float], heading_vector: list[float], weight: float) -> list[float]:
    """`chunk_vector + weight * heading_vector`, scaled back to unit length (cosine search).
    Weight 0 (or no context vector) returns the chunk vector unchanged. Used for the heading's
    embedding and for the document's centroid (`document_centroid`) alike (`fold_vectors` for
    one vector)."""
    if weight == 0 or not heading_vector:
        return chunk_vector
    folded: list[float] = fold_vectors(np.asarray([chunk_vector], dtype=np.float64), heading_vector, weight)[0].tolist()
    return folded


def document_centroid(chunk_vectors: Sequence[Sequence[float]] | NDArray[np.float64]) -> list[float]:
    """The mean of a document's chunk vectors (empty for no chunks). Pure."""
    if len(chunk_vectors) == 0:
        return []
    centroid: list[float] = np.mean(np.asarray(chunk_vectors, dtype=np.float64), axis=0).tolist()
    return centroid
