"""Plain text: decoded and tidied, nothing else."""

from __future__ import annotations

from ragplatform.domain.content_types import PLAIN_TEXT
from ragplatform.domain.parsers.document import ParsedDocument
from ragplatform.domain.parsers.limits import ParseLimits
from ragplatform.domain.parsers.text_decoding import decode_text, tidy_whitespace


def parse_plain_text(data: bytes, filename: str, limits: ParseLimits) -> ParsedDocument:
    """The text with whitespace tidied; may return empty text (the caller rejects that)."""
    return ParsedDocument(text=tidy_whitespace(decode_text(data, filename)), content_type=PLAIN_TEXT)
