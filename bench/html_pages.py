"""HTML manual pages cut to a fixed amount of visible text, for the prose corpora of
`bench/retrieval_quality.py` (bench/pgdoc_corpus.py, bench/sqlitedoc_corpus.py).

A page's markup is cut where its visible text, as the platform's own HTML parser renders it,
reaches `max_chars` characters, so that every page weighs about the same in the corpus and the
questions can be checked against exactly what is indexed. Cut pages are cached as files (the
directory is also what `ragplatform ingest` takes for the end-to-end check). A page in a
subdirectory of its manual (`mod/mod_rewrite`) is cached flat, its path's slashes made dashes
(`mod-mod_rewrite.html`): manuals repeat page names across directories (`howto/access`,
`rewrite/access`).
"""

from __future__ import annotations

from pathlib import Path

from ragplatform.domain.parsing import parse_document


def _visible_chars(markup: bytes, name: str) -> int:
    return len(parse_document(markup, name).text)


def cut_page(markup: bytes, name: str, max_chars: int) -> bytes:
    """The longest prefix of `markup` ending just before a tag whose visible text (as the
    platform's HTML parser renders it) is at most `max_chars` characters; the whole page when it
    is short enough. Binary search over tag starts: the parser recovers the unclosed elements."""
    if _visible_chars(markup, name) <= max_chars:
        return markup
    starts = [i for i in range(len(markup)) if markup[i : i + 1] == b"<"]
    low, high = 0, len(starts) - 1  # starts[low] always fits (the page's first tag: no text before it)
    while low < high:
        middle = (low + high + 1) // 2
        if _visible_chars(markup[: starts[middle]], name) <= max_chars:
            low = middle
        else:
            high = middle - 1
    return markup[: starts[low]]


def cut_pages(source: Path, pages: list[str], cache: Path, max_chars: int) -> dict[str, str]:
    """file name (`<page>.html`, slashes made dashes) -> cut markup of each of `pages` (paths
    relative to `source`, without `.html`) found in `source`, cutting the pages not cached in
    `cache` yet; pages missing from `source` are left out."""
    cache.mkdir(parents=True, exist_ok=True)
    corpus: dict[str, str] = {}
    for page in pages:
        cached = cache / f"{page.replace('/', '-')}.html"
        if not cached.is_file():
            original = source / f"{page}.html"
            if not original.is_file():
                continue
            cached.write_bytes(cut_page(original.read_bytes(), cached.name, max_chars))
        corpus[cached.name] = cached.read_text()
    return corpus
