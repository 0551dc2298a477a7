"""The result every parser returns."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ParsedDocument:
    """The readable text of a document, ready for chunking.

    `text` is never empty and keeps paragraph breaks as blank lines (the chunker prefers to cut
    there). `title` is the document's own title when it has one (HTML `<title>`, the first
    heading, PDF metadata), else "". `parent_title` is the title of the section or chapter the
    document is part of, when the format says so (HTML `<link rel="up" title=...>`, as DocBook
    and Texinfo manuals write it), else "". `page_count` is the number of pages of a paged format
    (PDF) and 0 otherwise. `sections` are the document's own headings (HTML `<h1>`-`<h6>`, so also
    Markdown's), in order, each as (offset in `text` where its text starts, its text); empty for
    formats without marked headings.
    """

    text: str
    content_type: str
    title: str = ""
    page_count: int = 0
    parent_title: str = ""
    sections: tuple[tuple[int, str], ...] = ()
