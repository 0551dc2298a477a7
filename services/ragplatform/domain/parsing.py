"""Turn an uploaded file's bytes into text: `parse_document` picks the parser for its type.

The per-format parsers live in `ragplatform.domain.parsers`; this module is the one entry point
the ingestion worker calls.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from ragplatform.domain.content_types import DOCX, HTML, MARKDOWN, PDF, PLAIN_TEXT, PPTX, XLSX, detect_content_type
from ragplatform.domain.errors import DocumentRejected
from ragplatform.domain.parsers.document import ParsedDocument
from ragplatform.domain.parsers.html import parse_html
from ragplatform.domain.parsers.limits import DEFAULT_LIMITS, ParseLimits
from ragplatform.domain.parsers.markdown import parse_markdown
from ragplatform.domain.parsers.pdf import parse_pdf
from ragplatform.domain.parsers.plain_text import parse_plain_text
from ragplatform.domain.parsers.powerpoint import parse_pptx
from ragplatform.domain.parsers.spreadsheet import parse_xlsx
from ragplatform.domain.parsers.word import parse_docx

__all__ = ["DEFAULT_LIMITS", "ParseLimits", "ParsedDocument", "parse_document"]

# A parser reads (bytes, filename, limits). To add a format: a module in `parsers/` with one such
# function, its content type in `content_types`, and one line here.
Parser = Callable[[bytes, str, ParseLimits], ParsedDocument]

_PARSERS: Final[dict[str, Parser]] = {
    PLAIN_TEXT: parse_plain_text,
    MARKDOWN: parse_markdown,
    HTML: parse_html,
    PDF: parse_pdf,
    DOCX: parse_docx,
    PPTX: parse_pptx,
    XLSX: parse_xlsx,
}


def parse_document(
    data: bytes, filename: str, content_type: str = "", limits: ParseLimits = DEFAULT_LIMITS
) -> ParsedDocument:
    """Parse a document; the result's `text` is never empty.

    The type comes from `detect_content_type(filename, content_type)` (a known extension wins,
    then the declared type). Raises `InvalidArgument` for an unsupported type (the message lists
    the supported ones) and `DocumentRejected` for a file that is empty, corrupt, encrypted,
    binary, or has no text, or exceeds `limits` — each with a message saying what to do. Pure: no I/O.
    """
    canonical = detect_content_type(filename, content_type)
    if not data.strip():
        raise DocumentRejected(f"{filename!r} is empty; upload a file that contains text.")
    parsed = _PARSERS[canonical](data, filename, limits)
    if not parsed.text:
        raise DocumentRejected(
            f"{filename!r} contains no readable text after parsing it as {canonical}; check that it is "
            "the right file and upload it again."
        )
    return parsed
