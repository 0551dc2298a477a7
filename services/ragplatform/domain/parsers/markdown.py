"""Markdown to readable text, by rendering it with markdown-it (CommonMark + tables) to HTML and
reading that like any HTML page: markup characters, link targets and raw `<script>` blocks go,
headings, list items, code blocks and paragraph breaks stay."""

from __future__ import annotations

from functools import cache

from markdown_it import MarkdownIt

from ragplatform.domain.content_types import MARKDOWN
from ragplatform.domain.parsers.document import ParsedDocument
from ragplatform.domain.parsers.html import html_to_document
from ragplatform.domain.parsers.limits import ParseLimits
from ragplatform.domain.parsers.text_decoding import decode_text


@cache
def _renderer() -> MarkdownIt:
    return MarkdownIt("commonmark").enable("table")


def parse_markdown(data: bytes, filename: str, limits: ParseLimits) -> ParsedDocument:
    """Text of a Markdown document; title from the first `<h1>` heading."""
    return html_to_document(_renderer().render(decode_text(data, filename)), MARKDOWN, filename)
