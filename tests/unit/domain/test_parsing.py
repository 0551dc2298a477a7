"""Parsers on the real test corpus and on the broken files users actually upload."""

from __future__ import annotations

import codecs
import io
from pathlib import Path

import pytest
from pypdf import PdfReader, PdfWriter

from ragplatform.domain.content_types import (
    HTML,
    MARKDOWN,
    PDF,
    PLAIN_TEXT,
    SUPPORTED_CONTENT_TYPES,
    detect_content_type,
    is_supported,
)
from ragplatform.domain.errors import DocumentRejected, InvalidArgument
from ragplatform.domain.parsers.limits import MIB, ParseLimits
from ragplatform.domain.parsing import parse_document
from tests.support import corpus
from tests.support.pdf_writer import build_decompression_bomb_pdf, build_pdf


def parse_file(path: Path) -> str:
    return parse_document(path.read_bytes(), path.name, "").text


# --- content types ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("filename", "declared", "expected"),
    [
        ("notes.md", "text/plain", MARKDOWN),  # a known extension beats a vague declaration
        ("REPORT.PDF", "application/octet-stream", PDF),
        ("page.htm", "", HTML),
        ("readme", "text/markdown; charset=utf-8", MARKDOWN),
        ("upload", "Text/HTML", HTML),
        ("upload", "application/xhtml+xml", HTML),
        ("data.csv", "", PLAIN_TEXT),
        ("dir\\win.txt", "", PLAIN_TEXT),
    ],
)
def test_detect_content_type(filename: str, declared: str, expected: str) -> None:
    assert detect_content_type(filename, declared) == expected
    assert expected in SUPPORTED_CONTENT_TYPES


@pytest.mark.parametrize(("filename", "declared"), [("photo.png", "image/png"), ("blob", ""), ("minutes.doc", "")])
def test_unsupported_type_is_refused_with_the_supported_list(filename: str, declared: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        detect_content_type(filename, declared)
    message = caught.value.message
    assert filename in message
    assert all(t in message for t in (PLAIN_TEXT, MARKDOWN, HTML, PDF))
    assert all(extension in message for extension in (".md", ".docx", ".pptx", ".xlsx"))
    assert not is_supported(filename, declared)


def test_parse_document_refuses_unsupported_types_before_reading() -> None:
    with pytest.raises(InvalidArgument, match="unsupported file type"):
        parse_document(b"\x89PNG\r\n\x1a\n not text", "photo.png", "")


# --- the corpus ---------------------------------------------------------------------------------


def test_every_corpus_document_parses_and_contains_its_facts() -> None:
    for fact in corpus.FACTS:
        text = parse_file(corpus.CORPUS_DIR / fact.filename)
        assert fact.answer_contains in " ".join(text.split()), fact


def test_markdown_loses_markup_but_keeps_structure() -> None:
    parsed = parse_document(corpus.ZEPHYR_MD.read_bytes(), corpus.ZEPHYR_MD.name, "")
    assert parsed.content_type == MARKDOWN
    assert parsed.title == "Zephyr-9 Centrifugal Pump — Operator Manual"
    assert "**" not in parsed.text
    assert "## " not in parsed.text
    assert "https://" not in parsed.text
    assert "\n\nMaterials\n\n" in parsed.text  # a heading is its own paragraph
    assert "- Replace the mechanical seal every 1,800 operating hours." in parsed.text
    assert "Maximum pressure | 42 bar |" in parsed.text  # table rows stay rows
    assert "Z9-SVC-1800" in parsed.text  # code blocks are content


# A page of a DocBook manual (PostgreSQL's), its navigation bar as DocBook XSL writes it.
DOCBOOK_PAGE = b"""<?xml version="1.0" encoding="UTF-8" standalone="no"?>
<html xmlns="http://www.w3.org/1999/xhtml"><head><title>13.1.\xc2\xa0Introduction</title>
<link rel="prev" href="mvcc.html" title="Chapter 13. Concurrency Control" /></head><body>
<div class="navheader"><table><tr><td><a accesskey="p" href="mvcc.html">Prev</a></td>
<td><a accesskey="u" href="mvcc.html"
 title="Chapter\xc2\xa013.\xc2\xa0Concurrency Control">Up</a></td></tr></table></div>
<p>PostgreSQL provides a rich set of tools for developers to manage concurrent access.</p></body></html>"""


@pytest.mark.parametrize(
    ("markup", "parent"),
    [
        (DOCBOOK_PAGE, "Chapter 13. Concurrency Control"),
        # Texinfo and others: rel="up", on a <link> or an <a>.
        (b'<title>Options</title><link rel="up" href="i.html" title="Invoking gzip"><p>x</p>', "Invoking gzip"),
        (b'<title>Options</title><p><a rel="Up index" href="i.html" title="Invoking gzip">up</a></p>', "Invoking gzip"),
        # No parent, or one that is the page itself.
        (b"<title>Options</title><p>x</p>", ""),
        (b'<title>Options</title><link rel="up" title="Options"><p>x</p>', ""),
        (b'<title>Options</title><a accesskey="u" href="i.html">Up</a><p>x</p>', ""),
    ],
)
def test_html_parent_title_from_the_up_link(markup: bytes, parent: str) -> None:
    assert parse_document(markup, "page.html", "").parent_title == parent


def test_html_drops_scripts_styles_and_navigation() -> None:
    parsed = parse_document(corpus.AURORA_HTML.read_bytes(), corpus.AURORA_HTML.name, "text/html")
    assert parsed.title == "Aurora Café — About us"
    for marker in corpus.HTML_BOILERPLATE_MARKERS:
        assert marker not in parsed.text
    assert "font-family" not in parsed.text
    assert "\n\nOur signature drink\n\n" in parsed.text
    assert "- Closed on Mondays" in parsed.text
    # Source line breaks inside a paragraph are not paragraph breaks.
    assert "of Kiruna. It is run by" in parsed.text


def test_pdf_text_pages_and_title() -> None:
    parsed = parse_document(corpus.KESTREL_PDF.read_bytes(), corpus.KESTREL_PDF.name, "application/pdf")
    assert parsed.page_count == 2
    assert parsed.title == "Kestrel X2 Datasheet"
    assert "maximum flight time of 38 minutes" in parsed.text
    assert "\n\nPayload and camera" in parsed.text  # pages are separate paragraphs


def test_corpus_pdf_is_small_and_real() -> None:
    data = corpus.KESTREL_PDF.read_bytes()
    assert len(data) < 50_000
    assert len(PdfReader(io.BytesIO(data)).pages) == 2


# --- text decoding ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        codecs.BOM_UTF8 + "Smörgåsbord for 12 € per person.".encode(),
        "Smörgåsbord for 12 € per person.".encode("utf-16"),
        "Smörgåsbord for 12 € per person.".encode("cp1252"),
        "Smörgåsbord\r\nfor 12 € per person.".encode(),
    ],
    ids=["utf8-bom", "utf16-bom", "windows-1252", "crlf"],
)
def test_text_encodings(data: bytes) -> None:
    text = parse_document(data, "menu.txt", "").text
    assert " ".join(text.split()) == "Smörgåsbord for 12 € per person."
    assert "\ufeff" not in text
    assert "\r" not in text


def test_whitespace_is_tidied_but_paragraphs_kept() -> None:
    text = parse_document(b"  one   two \n\n\n\n three\t\tfour  \n", "a.txt", "").text
    assert text == "one two\n\nthree four"


def test_every_kind_of_space_within_a_line_is_one_space() -> None:
    data = "\u2003one\u00a0\u00a0two\x0b\x0cthree\u2009 \r\nfour\u3000\n \u00a0\n\nfive".encode()
    assert parse_document(data, "a.txt", "").text == "one two three\nfour\n\nfive"


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (bytes(range(256)) * 4, "binary"),
        (b"\x81\x8d\x8f\x90\x9d" * 20, "neither UTF-8 nor Windows-1252"),
        (b"text\x01\x02\x03\x04\x05\x06\x07\x08 with many control characters", "binary"),
    ],
)
def test_binary_junk_is_rejected_clearly(data: bytes, reason: str) -> None:
    with pytest.raises(DocumentRejected, match=reason) as caught:
        parse_document(data, "junk.txt", "")
    assert "upload" in caught.value.message


# --- files that must be refused -----------------------------------------------------------------


@pytest.mark.parametrize("data", [b"", b"  \n\t "])
def test_empty_file_is_rejected(data: bytes) -> None:
    with pytest.raises(DocumentRejected, match="is empty"):
        parse_document(data, "empty.txt", "")
    with pytest.raises(DocumentRejected, match="is empty"):
        parse_document(corpus.EMPTY_TXT.read_bytes(), corpus.EMPTY_TXT.name, "")


def test_markup_without_text_is_rejected() -> None:
    with pytest.raises(DocumentRejected, match="no readable text"):
        parse_document(b"<html><script>x()</script><nav>menu</nav></html>", "blank.html", "")


def test_corrupt_pdf_is_rejected_with_advice() -> None:
    with pytest.raises(DocumentRejected, match="damaged or incomplete PDF") as caught:
        parse_document(corpus.CORRUPT_PDF.read_bytes(), corpus.CORRUPT_PDF.name, "")
    assert "re-export" in caught.value.message


def test_not_a_pdf_at_all_is_rejected() -> None:
    with pytest.raises(DocumentRejected, match="not a PDF"):
        parse_document(b"hello, I am text", "fake.pdf", "")


def test_image_only_pdf_asks_for_ocr() -> None:
    with pytest.raises(DocumentRejected, match="OCR"):
        parse_document(corpus.IMAGE_ONLY_PDF.read_bytes(), corpus.IMAGE_ONLY_PDF.name, "")


def _encrypt(data: bytes, user_password: str) -> bytes:
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(data)))
    writer.encrypt(user_password=user_password, owner_password="owner-secret", algorithm="RC4-128")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def test_password_protected_pdf_is_rejected() -> None:
    locked = _encrypt(build_pdf([["Top secret numbers."]]), "hunter2")
    with pytest.raises(DocumentRejected, match="password-protected"):
        parse_document(locked, "locked.pdf", "")


def test_pdf_encrypted_only_against_editing_still_parses() -> None:
    restricted = _encrypt(build_pdf([["Readable by anyone."]]), "")
    assert parse_document(restricted, "restricted.pdf", "").text == "Readable by anyone."


# --- hostile shapes: bounded by the parsers themselves -------------------------------------------


def test_html_nested_past_the_parser_ceiling_is_refused_not_truncated() -> None:
    deep = ("<div>" * 300 + "buried" + "</div>" * 300).encode()
    with pytest.raises(DocumentRejected, match="more than 256 levels deep"):
        parse_document(deep, "deep.html", "")
    # Nesting real pages use is fine, and the innermost text is kept.
    assert parse_document(("<div>" * 200 + "kept" + "</div>" * 200).encode(), "ok.html", "").text == "kept"


def test_markdown_with_raw_deep_html_is_refused_too() -> None:
    with pytest.raises(DocumentRejected, match="levels deep"):
        parse_document(("<div>" * 300 + "x" + "</div>" * 300).encode(), "deep.md", "")


def test_a_pdf_expanding_past_the_content_limit_is_refused_before_extraction() -> None:
    bomb = build_decompression_bomb_pdf(pages=3, expanded_bytes_per_page=2 * MIB)
    with pytest.raises(DocumentRejected, match=r"more than 5 MB of page content.*RAG_PARSE_MAX_CONTENT_MB"):
        parse_document(bomb, "bomb.pdf", "", ParseLimits(max_content_bytes=5 * MIB))
    # One stream alone over the limit: pypdf's own decompression cap (lowered to ours) stops it.
    with pytest.raises(DocumentRejected, match="more than 1 MB of page content"):
        parse_document(bomb, "bomb.pdf", "", ParseLimits(max_content_bytes=1 * MIB))


def test_html_sections_are_its_headings_with_where_they_start() -> None:
    markup = (
        b"<html><head><title>Transaction</title></head><body>"
        b"<h1>\n  Transaction\n</h1><p>Contents: 1. Syntax 2. Details</p>"
        b"<h2>2.2. DEFERRED, <code>IMMEDIATE</code>\n and EXCLUSIVE</h2><p>A deferred one waits \xee\x80\x80.</p>"
        b"<nav><h2>Site menu</h2></nav><h3>Errors</h3><p>Rolled back.</p></body></html>"
    )
    parsed = parse_document(markup, "page.html", "")
    # The text is what it was without markers (the page's own private-use character is dropped).
    assert parsed.text == (
        "Transaction\n\nContents: 1. Syntax 2. Details\n\n2.2. DEFERRED, IMMEDIATE and EXCLUSIVE\n\n"
        "A deferred one waits .\n\nErrors\n\nRolled back."
    )
    assert [heading for _, heading in parsed.sections] == [
        "Transaction",
        "2.2. DEFERRED, IMMEDIATE and EXCLUSIVE",
        "Errors",
    ]
    for offset, heading in parsed.sections:
        assert parsed.text[offset : offset + len(heading)] == heading
    # Formats without marked headings have none; Markdown's are HTML's.
    assert parse_document(b"Title\n\nText", "a.txt", "").sections == ()
    assert [h for _, h in parse_document(b"# Pumps\n\nText\n\n## Valves\n\nMore", "a.md", "").sections] == [
        "Pumps",
        "Valves",
    ]
