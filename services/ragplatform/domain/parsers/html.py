"""HTML to readable text: boilerplate dropped, headings and paragraph breaks kept, and where
each heading (`<h1>`-`<h6>`) starts in the text recorded (`ParsedDocument.sections`).

Parsed with lxml (libxml2's HTML parser, in C) and read in one non-recursive walk, so the cost
is linear in the size of the page whatever its shape. libxml2 refuses to nest elements deeper
than `MAX_HTML_NESTING` (256) levels; a page that does is rejected (its text past that depth
would be lost silently otherwise). Real pages stay far below it; 100,000 nested `<div>`s in a
1 MB file — a known way to stall recursive parsers — fail in milliseconds.
"""

from __future__ import annotations

import re
from typing import Final

from lxml import etree

from ragplatform.domain.content_types import HTML
from ragplatform.domain.errors import DocumentRejected
from ragplatform.domain.parsers.document import ParsedDocument
from ragplatform.domain.parsers.limits import ParseLimits
from ragplatform.domain.parsers.text_decoding import decode_text, tidy_whitespace

# libxml2's own ceiling without its "huge" option (which would lift every safety limit at once).
MAX_HTML_NESTING: Final = 256

# Elements that never carry the document's content: code, styling, navigation, embedded media.
_DROPPED = frozenset(("script", "style", "nav", "noscript", "template", "svg", "iframe", "object", "head", "button"))
# Elements that start a new paragraph; a blank line around each keeps the chunker's best cut points.
_BLOCKS = frozenset((
    "p", "div", "section", "article", "main", "header", "footer", "aside", "blockquote", "pre",
    "table", "ul", "ol", "dl", "dt", "dd", "figure", "figcaption", "address", "details",
    "summary", "form", "fieldset", "hr",
    "h1", "h2", "h3", "h4", "h5", "h6",
))  # fmt: skip
_LINE_BEFORE = {"li": "\n- ", "br": "\n", "tr": "\n"}
_CELLS = frozenset(("th", "td"))
# Inside these, whitespace is content; everywhere else a run of it is one space (HTML's rule).
_PREFORMATTED = frozenset(("pre", "textarea"))
_WHITESPACE = re.compile(r"\s+")
_HEADINGS = frozenset(("h1", "h2", "h3", "h4", "h5", "h6"))
# Private-use characters that mark where a heading's text starts and ends while the text is
# assembled and tidied (offsets are only known after tidying); removed from the page's own text.
_OPEN, _CLOSE = "\ue000", "\ue001"
_MARKERS = re.compile(f"[{_OPEN}{_CLOSE}]")
_MARKER_SPLIT = re.compile(f"([{_OPEN}{_CLOSE}])")
_MARKER_BLANKS = re.compile(f"({_OPEN})\\s+|\\s+({_CLOSE})")


def parse_html(data: bytes, filename: str, limits: ParseLimits) -> ParsedDocument:
    """Visible text of an HTML document; title from `<title>`, else the first `<h1>`."""
    return html_to_document(decode_text(data, filename), HTML, filename)


def html_to_document(markup: str, content_type: str, filename: str) -> ParsedDocument:
    """Shared by the HTML and Markdown parsers (Markdown is rendered to HTML first). Raises
    `DocumentRejected` when the markup nests deeper than `MAX_HTML_NESTING`."""
    parser = etree.HTMLParser(encoding="utf-8", remove_comments=True, remove_pis=True, no_network=True)
    root = etree.fromstring(markup.encode("utf-8", "surrogatepass"), parser)
    if any(error.type_name == "ERR_RESOURCE_LIMIT" for error in parser.error_log):
        raise DocumentRejected(
            f"{filename!r} nests its HTML elements more than {MAX_HTML_NESTING} levels deep, which no real "
            "page needs (it is probably generated to stall parsers); flatten the markup, or upload the text "
            "as .txt or .md."
        )
    if root is None:  # nothing but whitespace or comments
        return ParsedDocument(text="", content_type=content_type)
    title = _title(root)
    text, sections = _sections(_visible_text(root))
    return ParsedDocument(
        text=text,
        content_type=content_type,
        title=title,
        parent_title=_up_title(root, title),
        sections=sections,
    )


def _sections(marked: str) -> tuple[str, tuple[tuple[int, str], ...]]:
    """The tidied text without its heading markers, and each marked heading as (offset, text)."""
    # Blanks next to a marker are a heading's line ends, which tidying drops; the marker would keep them.
    tidy = tidy_whitespace(_MARKER_BLANKS.sub(lambda match: match.group(1) or match.group(2), marked))
    text: list[str] = []
    length = depth = start = 0
    heading: list[str] = []
    sections: list[tuple[int, str]] = []
    for piece in _MARKER_SPLIT.split(tidy):
        if piece == _OPEN:
            if depth == 0:
                start, heading = length, []
            depth += 1
        elif piece == _CLOSE:
            depth = max(0, depth - 1)
            title = " ".join("".join(heading).split()) if depth == 0 else ""
            if title:
                sections.append((start, title))
                heading = []
        else:
            text.append(piece)
            length += len(piece)
            if depth:
                heading.append(piece)
    return "".join(text), tuple(sections)


def _visible_text(root: etree._Element) -> str:
    parts: list[str] = []
    dropped = 0  # > 0 inside an element whose content is not text
    preformatted = 0

    def add(text: str | None) -> None:
        if text and not dropped:
            text = _MARKERS.sub("", text)
            parts.append(text if preformatted else _WHITESPACE.sub(" ", text))

    for event, element in etree.iterwalk(root, events=("start", "end")):
        tag = element.tag if isinstance(element.tag, str) else ""
        if event == "start":
            if tag in _DROPPED:
                dropped += 1
            elif not dropped:
                if tag in _BLOCKS:
                    parts.append("\n\n")
                elif tag in _LINE_BEFORE:
                    parts.append(_LINE_BEFORE[tag])
                if tag in _HEADINGS:
                    parts.append(_OPEN)
            preformatted += tag in _PREFORMATTED
            add(element.text)
        else:
            preformatted -= tag in _PREFORMATTED
            if tag in _DROPPED:
                dropped -= 1
            elif not dropped:
                if tag in _HEADINGS:
                    parts.append(_CLOSE)
                if tag in _BLOCKS:
                    parts.append("\n\n")
                elif tag in _CELLS:
                    parts.append(" | ")
            if element is not root:
                add(element.tail)
    return "".join(parts)


def _title(root: etree._Element) -> str:
    for name in ("title", "h1"):
        for element in root.iter(name):
            title = " ".join(" ".join(element.itertext()).split())
            if title:
                return title
            break
    return ""


def _up_title(root: etree._Element, title: str) -> str:
    """The title of the page's parent: a `<link>` or `<a>` with `rel="up"`, or the "Up" link of
    a DocBook or Texinfo navigation bar (`accesskey="u"`), read from its `title` attribute; ""
    when there is none or it is the page's own title."""
    for element in root.iter("link", "a"):
        if "up" in (element.get("rel") or "").lower().split() or element.get("accesskey") == "u":
            up = " ".join((element.get("title") or "").split())
            if up:
                return up if up != title else ""
    return ""
