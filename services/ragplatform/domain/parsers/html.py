"""HTML to readable text: boilerplate dropped, headings and paragraph breaks kept."""

from __future__ import annotations

import re

from bs4 import BeautifulSoup, Comment, Tag
from bs4.element import NavigableString

from ragplatform.domain.content_types import HTML
from ragplatform.domain.parsers.document import ParsedDocument
from ragplatform.domain.parsers.text_decoding import decode_text, tidy_whitespace

# Elements that never carry the document's content: code, styling, navigation, embedded media.
_DROPPED = ("script", "style", "nav", "noscript", "template", "svg", "iframe", "object", "head", "button")
# Elements that start a new paragraph; a blank line around each keeps the chunker's best cut points.
_BLOCKS = (
    "p", "div", "section", "article", "main", "header", "footer", "aside", "blockquote", "pre",
    "table", "ul", "ol", "dl", "dt", "dd", "figure", "figcaption", "address", "details",
    "summary", "form", "fieldset", "hr",
    "h1", "h2", "h3", "h4", "h5", "h6",
)  # fmt: skip
_LINES = ("li", "br", "tr")
_CELLS = ("th", "td")
# Inside these, whitespace is content; everywhere else a run of it is one space (HTML's rule).
_PREFORMATTED = ("pre", "textarea")
_WHITESPACE = re.compile(r"\s+")


def parse_html(data: bytes, filename: str) -> ParsedDocument:
    """Visible text of an HTML document; title from `<title>`, else the first `<h1>`."""
    return html_to_document(decode_text(data, filename), HTML)


def html_to_document(markup: str, content_type: str) -> ParsedDocument:
    """Shared by the HTML and Markdown parsers (Markdown is rendered to HTML first)."""
    soup = BeautifulSoup(markup, "html.parser")
    title = _title(soup)
    for name in _DROPPED:
        for element in soup.find_all(name):
            element.decompose()
    _collapse_whitespace(soup)
    for element in soup.find_all(_BLOCKS):
        element.insert_before("\n\n")
        element.insert_after("\n\n")
    for element in soup.find_all(_LINES):
        element.insert_before("\n- " if element.name == "li" else "\n")
    for element in soup.find_all(_CELLS):
        element.insert_after(" | ")
    text = tidy_whitespace(soup.get_text())
    return ParsedDocument(text=text, content_type=content_type, title=title)


def _collapse_whitespace(soup: BeautifulSoup) -> None:
    for string in list(soup.find_all(string=True)):
        if isinstance(string, Comment):
            string.extract()
        elif type(string) is NavigableString and string.find_parent(_PREFORMATTED) is None:
            string.replace_with(_WHITESPACE.sub(" ", str(string)))


def _title(soup: BeautifulSoup) -> str:
    for name in ("title", "h1"):
        element = soup.find(name)
        if isinstance(element, Tag):
            title = " ".join(element.get_text(" ").split())
            if title:
                return title
    return ""
