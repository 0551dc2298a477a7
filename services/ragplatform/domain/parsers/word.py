"""Word documents (.docx) to text with python-docx: paragraphs and tables in document order."""

from __future__ import annotations

import io

import docx
from docx.table import Table
from docx.text.paragraph import Paragraph

from ragplatform.domain.content_types import DOCX
from ragplatform.domain.parsers.document import ParsedDocument
from ragplatform.domain.parsers.limits import ParseLimits
from ragplatform.domain.parsers.office_zip import check_office_zip, damaged
from ragplatform.domain.parsers.text_decoding import tidy_whitespace

KIND = "Word document"


def parse_docx(data: bytes, filename: str, limits: ParseLimits) -> ParsedDocument:
    """Every paragraph (a blank line between them) and every table (one line per row, cells
    separated by ` | `), in document order. The title is the document's Title property, else its
    first Title- or Heading-styled paragraph.

    Raises `DocumentRejected` for a file that is not a readable .docx or expands beyond the
    bounds of `office_zip`.
    """
    check_office_zip(data, filename, KIND, ".docx")
    try:
        document = docx.Document(io.BytesIO(data))
        blocks = [_block_text(block) for block in document.iter_inner_content()]
        title = (document.core_properties.title or "").strip() or _first_heading(document.paragraphs)
    # python-docx fails in many ways on a damaged package (KeyError for a missing part, lxml's
    # XMLSyntaxError, ValueError ...); each means the same thing to whoever uploaded it.
    except MemoryError:
        raise  # not damage: the sandbox reports it as over the memory limit
    except Exception as exc:
        raise damaged(filename, KIND, exc) from None
    text = tidy_whitespace("\n\n".join(block for block in blocks if block))
    return ParsedDocument(text=text, content_type=DOCX, title=title)


def _block_text(block: Paragraph | Table) -> str:
    if isinstance(block, Paragraph):
        return block.text.strip()
    rows = []
    for row in block.rows:
        cells: list[str] = []
        for cell in row.cells:
            value = " ".join(cell.text.split())
            # a merged cell repeats in every grid column it spans; say it once
            if value and (not cells or cells[-1] != value):
                cells.append(value)
        if cells:
            rows.append(" | ".join(cells))
    return "\n".join(rows)


def _first_heading(paragraphs: list[Paragraph]) -> str:
    for paragraph in paragraphs:
        style = paragraph.style.name if paragraph.style is not None else ""
        if (style or "").startswith(("Title", "Heading")) and paragraph.text.strip():
            return " ".join(paragraph.text.split())
    return ""
