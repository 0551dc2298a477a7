"""The document heading a chunk carries into its embedding and sparse vector."""

from __future__ import annotations

import math

import pytest

from ragplatform.domain.chunk_context import (
    MAX_HEADING_CHARS,
    chunk_sections,
    contextualized,
    document_centroid,
    document_heading,
    fold_heading,
    section_heading,
)
from ragplatform.domain.parsers.document import ParsedDocument


def parsed(text: str, title: str = "") -> ParsedDocument:
    return ParsedDocument(text=text, content_type="text/plain", title=title)


@pytest.mark.parametrize(
    ("text", "heading"),
    [
        # A manual page: the running header line is skipped for the NAME line.
        (
            "DU(1)      User Commands      DU(1)\n\nNAME\n       du - estimate file space usage\n",
            "du - estimate file space usage",
        ),
        # pydoc's text output.
        (
            "Help on module json:\n\nNAME\n    json - JSON (JavaScript Object Notation) is a subset of\n",
            "json - JSON (JavaScript Object Notation) is a subset of",
        ),
        ("ls, dir - list directory contents\nmore", "ls, dir - list directory contents"),
        # No such line: the first line.
        ("\n\n  Zephyr-9 pump manual  \n\nThe pump delivers 42 bar.", "Zephyr-9 pump manual"),
    ],
)
def test_heading_of_plain_text(text: str, heading: str) -> None:
    assert document_heading(parsed(text)) == heading


def test_the_formats_own_title_wins_and_headings_are_bounded() -> None:
    assert document_heading(parsed("du - estimate file space usage", title="  Disk   usage ")) == "Disk usage"
    assert len(document_heading(parsed("x" * 500))) == MAX_HEADING_CHARS
    assert document_heading(parsed("   \n  ")) == ""


@pytest.mark.parametrize(
    ("title", "parent", "heading"),
    [
        # A numbered manual's section: the label goes, the chapter it belongs to is named.
        ("13.1.\u00a0Introduction", "Chapter\u00a013.\u00a0Concurrency Control", "Introduction (Concurrency Control)"),
        ("20.4 Resource Consumption", "", "Resource Consumption"),
        ("Part I. Tutorial", "", "Tutorial"),
        ("F.3. auth_delay", "Appendix F. Additional Supplied Modules", "auth_delay (Additional Supplied Modules)"),
        ("IV. Client Interfaces", "", "Client Interfaces"),
        ("§ 4.2 Limits", "", "Limits"),
        # Not labels: a one-level number or letter without its dot, an abbreviation, a bare label.
        ("3 Ways to Win", "", "3 Ways to Win"),
        ("A Guide to Pumps", "", "A Guide to Pumps"),
        ("E. coli counts", "", "E. coli counts"),
        ("5.", "", "5."),
    ],
)
def test_titles_lose_their_section_label_and_gain_their_parent(title: str, parent: str, heading: str) -> None:
    document = ParsedDocument(text="body", content_type="text/html", title=title, parent_title=parent)
    assert document_heading(document) == heading


def test_contextualized_text() -> None:
    assert contextualized("du - estimate file space usage", "-s, --summarize") == (
        "du - estimate file space usage\n\n-s, --summarize"
    )
    assert contextualized("", "text") == "text"


def test_fold_heading_leans_the_chunk_towards_its_heading_and_keeps_unit_length() -> None:
    chunk, heading = [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]
    folded = fold_heading(chunk, heading, 0.3)
    assert math.isclose(math.sqrt(sum(x * x for x in folded)), 1.0)
    assert folded[0] > folded[1] > 0
    assert math.isclose(folded[1] / folded[0], 0.3)
    assert fold_heading(chunk, heading, 0.0) == chunk
    assert fold_heading(chunk, [], 0.3) == chunk


def test_document_centroid_is_the_mean_of_the_chunk_vectors() -> None:
    assert document_centroid([[1.0, 0.0, 2.0], [0.0, 1.0, 4.0]]) == [0.5, 0.5, 3.0]
    assert document_centroid([[0.3, 0.4]]) == [0.3, 0.4]
    assert document_centroid([]) == []
    assert fold_heading([1.0, 0.0], document_centroid([]), 0.6) == [1.0, 0.0]


@pytest.mark.parametrize(
    ("heading", "section", "expected"),
    [
        (
            "Transaction",
            "2.2. DEFERRED, IMMEDIATE, and EXCLUSIVE",
            "Transaction \u2014 DEFERRED, IMMEDIATE, and EXCLUSIVE",
        ),
        (
            "Modifying Tables (Data Definition)",
            "5.6.1.\u00a0Adding a Column",
            "Modifying Tables (Data Definition) \u2014 Adding a Column",
        ),
        # Nothing new to say: no section, or one the heading already names (a page's <h1>).
        ("Transaction", "", "Transaction"),
        ("Write-Ahead Logging", "Write-Ahead  Logging", "Write-Ahead Logging"),
        ("", "Valves", "Valves"),
    ],
)
def test_a_chunk_heading_names_its_section(heading: str, section: str, expected: str) -> None:
    assert section_heading(heading, section) == expected


def test_each_chunk_gets_the_section_it_starts_in() -> None:
    sections = [(12, "Setup"), (40, "Errors")]
    # Overlapping chunks start anywhere: before the first section, on a heading, inside a section.
    assert chunk_sections([0, 5, 12, 20, 39, 40, 55], sections) == [
        "",
        "",
        "Setup",
        "Setup",
        "Setup",
        "Errors",
        "Errors",
    ]
    assert chunk_sections([0, 9], []) == ["", ""]
