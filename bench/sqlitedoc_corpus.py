"""A fourth corpus for `bench/retrieval_quality.py --corpus sqlitedoc`: prose documentation the
project never looked at while building or tuning the pipeline, the SQLite documentation as
Debian's `sqlite3-doc` package ships it (3.40.1: the sqlite.org web pages, HTML, one page per
topic), ingested as HTML through the platform's own parser.

Pages, by a rule fixed before any question was written: every top-level page of
/usr/share/doc/sqlite3 (the subdirectories are the per-function C API reference `c3ref/`, the
session-API reference, the syntax diagrams and the per-release notes) except those in `EXCLUDED`,
which are not documentation of using SQLite or are generated lists: indexes, cross-references
and site maps; news, release history and change lists; legal and organisational pages; the
generated C API and requirements references (entries, not prose); two pages about SQLite
version 2; and `fileformat.html`, a byte-identical copy of `fileformat2.html`. What remains (174
pages) is the SQL language, pragmas, extensions, the command-line shell, the C interface
overviews, and the essays on how SQLite works and how to use it. Each page's markup is cut where
its visible text reaches `MAX_TEXT_CHARS` characters (as bench/pgdoc_corpus.py does; the
questions in bench/retrieval_questions_sqlitedoc.tsv were written against the cut pages), which
keeps the corpus near 1,300 chunks. The cut pages go to bench/results/sqlitedoc/, which is also
the directory to `ragplatform ingest` for the end-to-end check. Install the pages with
`apt-get install sqlite3-doc`; without them the corpus is empty and the bench says so.
"""

from __future__ import annotations

from pathlib import Path

from bench.html_pages import cut_pages
from bench.manpage_corpus import RESULTS

SOURCE = Path("/usr/share/doc/sqlite3")
SQLITEDOC_DIR = RESULTS / "sqlitedoc"
MAX_TEXT_CHARS = 8_000

EXCLUDED = {
    # indexes, cross-references, site maps, navigation and placeholder pages
    "doc_backlink_crossref", "doc_keyword_crossref", "doc_pagelink_crossref", "doc_target_crossref",
    "keyword_index", "sitemap", "doclist", "docs", "index", "lang", "syntax", "syntaxdiagrams", "hp1",
    "sqlite", "mingw",
    # news, release history, change lists
    "changes", "chronology", "news", "oldnews", "34to35", "35to36", "pressrelease-20071212",
    # legal and organisational pages
    "copyright", "copyright-release", "consortium", "consortium_agreement-20071201", "codeofconduct",
    "codeofethics", "crew", "books", "famous", "support", "prosupport", "download",
    # generated references (one entry after another, not prose)
    "capi3ref", "requirements", "session",
    # SQLite version 2, and a duplicate page
    "c_interface", "datatypes", "fileformat",
}  # fmt: skip


def sqlitedoc_pages() -> list[str]:
    """The pages the rule keeps, by name without `.html`, sorted."""
    return sorted(p.stem for p in SOURCE.glob("*.html") if p.stem not in EXCLUDED)


def sqlitedoc_corpus() -> dict[str, str]:
    """file name (`<page>.html`) -> cut markup, cutting pages not cached yet."""
    return cut_pages(SOURCE, sqlitedoc_pages(), SQLITEDOC_DIR, MAX_TEXT_CHARS)
