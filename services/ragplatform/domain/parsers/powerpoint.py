"""PowerPoint presentations (.pptx) to text with python-pptx: each slide's text and notes."""

from __future__ import annotations

import io
from collections.abc import Iterable

import pptx
from pptx.shapes.base import BaseShape
from pptx.shapes.group import GroupShape

from ragplatform.domain.content_types import PPTX
from ragplatform.domain.parsers.document import ParsedDocument
from ragplatform.domain.parsers.limits import ParseLimits
from ragplatform.domain.parsers.office_zip import check_office_zip, damaged
from ragplatform.domain.parsers.text_decoding import tidy_whitespace

KIND = "PowerPoint presentation"


def parse_pptx(data: bytes, filename: str, limits: ParseLimits) -> ParsedDocument:
    """Slide by slide (a blank line between slides): the text of every shape, table row and group,
    then the speaker notes. `page_count` is the number of slides; the title is the Title property,
    else the first slide's title.

    Raises `DocumentRejected` for a file that is not a readable .pptx or expands beyond the
    bounds of `office_zip`.
    """
    check_office_zip(data, filename, KIND, ".pptx")
    try:
        presentation = pptx.Presentation(io.BytesIO(data))
        slides = list(presentation.slides)
        texts = []
        for slide in slides:
            parts = list(_shape_texts(slide.shapes))
            if slide.has_notes_slide and slide.notes_slide.notes_text_frame is not None:
                parts.append(slide.notes_slide.notes_text_frame.text)
            texts.append("\n".join(part.strip() for part in parts if part.strip()))
        title = (presentation.core_properties.title or "").strip()
        if not title and slides and slides[0].shapes.title is not None:
            title = " ".join(slides[0].shapes.title.text_frame.text.split())
    except MemoryError:
        raise  # not damage: the sandbox reports it as over the memory limit
    except Exception as exc:  # a damaged package fails in many ways; all mean the same to the uploader
        raise damaged(filename, KIND, exc) from None
    text = tidy_whitespace("\n\n".join(t for t in texts if t))
    return ParsedDocument(text=text, content_type=PPTX, title=title, page_count=len(slides))


def _shape_texts(shapes: Iterable[BaseShape]) -> Iterable[str]:
    for shape in shapes:
        if isinstance(shape, GroupShape):
            yield from _shape_texts(shape.shapes)
        elif getattr(shape, "has_text_frame", False) and shape.has_text_frame:  # type: ignore[attr-defined]
            yield shape.text_frame.text  # type: ignore[attr-defined]
        elif getattr(shape, "has_table", False) and shape.has_table:  # type: ignore[attr-defined]
            for row in shape.table.rows:  # type: ignore[attr-defined]
                yield " | ".join(" ".join(cell.text.split()) for cell in row.cells if cell.text.strip())
