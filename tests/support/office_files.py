"""Office documents written in the test by the same libraries that read them (python-docx,
python-pptx, openpyxl): real files, no checked-in binaries."""

from __future__ import annotations

import io

import docx
import openpyxl
import pptx
from pptx.util import Inches


def build_docx(
    paragraphs: list[str], table: list[list[str]] | None = None, title: str = "", heading: str = ""
) -> bytes:
    document = docx.Document()
    if title:
        document.core_properties.title = title
    if heading:
        document.add_heading(heading, level=1)
    for text in paragraphs:
        document.add_paragraph(text)
    if table:
        grid = document.add_table(rows=len(table), cols=len(table[0]))
        for r, row in enumerate(table):
            for c, value in enumerate(row):
                grid.cell(r, c).text = value
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def build_pptx(slides: list[tuple[str, str]], notes: str = "") -> bytes:
    """Slides of (title, body text); `notes` go on the first slide's speaker notes."""
    presentation = pptx.Presentation()
    layout = presentation.slide_layouts[1]  # "Title and Content"
    for index, (title, body) in enumerate(slides):
        slide = presentation.slides.add_slide(layout)
        slide.shapes.title.text = title
        slide.placeholders[1].text = body
        if index == 0 and notes:
            slide.notes_slide.notes_text_frame.text = notes
    table_slide = presentation.slides.add_slide(presentation.slide_layouts[5])
    table_slide.shapes.title.text = "Figures"
    shape = table_slide.shapes.add_table(2, 2, Inches(1), Inches(2), Inches(6), Inches(1))
    for (r, c), value in zip([(0, 0), (0, 1), (1, 0), (1, 1)], ["metric", "value", "uptime", "99.95%"], strict=True):
        shape.table.cell(r, c).text = value
    out = io.BytesIO()
    presentation.save(out)
    return out.getvalue()


def build_xlsx(sheets: dict[str, list[list[object]]], title: str = "") -> bytes:
    workbook = openpyxl.Workbook()
    for default_sheet in list(workbook.worksheets):
        workbook.remove(default_sheet)
    for name, rows in sheets.items():
        sheet = workbook.create_sheet(name)
        for row in rows:
            sheet.append(row)
    if title:
        workbook.properties.title = title
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()
