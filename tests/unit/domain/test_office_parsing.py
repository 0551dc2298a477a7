"""Word, PowerPoint and Excel files, written in the test by python-docx/python-pptx/openpyxl,
parsed to text; damaged files and zip bombs refused with a message that says what to do."""

from __future__ import annotations

import io
import zipfile

import pytest

from ragplatform.domain.content_types import DOCX, PPTX, XLSX, detect_content_type
from ragplatform.domain.errors import DocumentRejected
from ragplatform.domain.parsers.office_zip import MAX_UNCOMPRESSED_BYTES
from ragplatform.domain.parsing import parse_document
from tests.support import corpus
from tests.support.office_files import build_docx, build_pptx, build_xlsx


def test_docx_paragraphs_and_tables_in_document_order_with_its_title() -> None:
    data = build_docx(
        ["The Quokka lamp glows amber.", "It draws 4 watts."],
        table=[["part", "material"], ["shade", "frosted glass"], ["base", "oak"]],
        heading="Quokka lamp manual",
    )
    parsed = parse_document(data, "lamp.docx")
    assert parsed.content_type == DOCX
    assert parsed.title == "Quokka lamp manual"
    assert parsed.text.split("\n\n") == [
        "Quokka lamp manual",
        "The Quokka lamp glows amber.",
        "It draws 4 watts.",
        "part | material\nshade | frosted glass\nbase | oak",
    ]


def test_docx_title_property_wins_over_the_first_heading() -> None:
    data = build_docx(["body"], title="Official title", heading="A heading")
    assert parse_document(data, "t.docx").title == "Official title"


def test_pptx_slides_tables_and_notes() -> None:
    data = build_pptx([("Roadmap 2027", "Ship the Quokka lamp in March"), ("Risks", "Oak supply")], notes="say hi")
    parsed = parse_document(data, "deck.pptx")
    assert parsed.content_type == PPTX
    assert parsed.page_count == 3
    assert parsed.title == "Roadmap 2027"
    slides = parsed.text.split("\n\n")
    assert slides == [
        "Roadmap 2027\nShip the Quokka lamp in March\nsay hi",
        "Risks\nOak supply",
        "Figures\nmetric | value\nuptime | 99.95%",
    ]


def test_xlsx_sheets_rows_and_values() -> None:
    data = build_xlsx(
        {"Budget": [["item", "cost"], ["lamps", 120], ["oak", None, 7.5]], "Empty": []}, title="Budget 2027"
    )
    parsed = parse_document(data, "budget.xlsx")
    assert parsed.content_type == XLSX
    assert parsed.title == "Budget 2027"
    assert parsed.text == "Sheet: Budget\nitem | cost\nlamps | 120\noak | 7.5"


@pytest.mark.parametrize("extension", [".docx", ".pptx", ".xlsx"])
def test_office_extensions_are_detected(extension: str) -> None:
    assert detect_content_type(f"file{extension}", "application/octet-stream") in (DOCX, PPTX, XLSX)


@pytest.mark.parametrize(
    ("filename", "data", "says"),
    [
        (corpus.DAMAGED_PPTX.name, corpus.DAMAGED_PPTX.read_bytes(), "not a readable PowerPoint presentation"),
        ("old.docx", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 600, "save it as .docx"),
        ("sheet.xlsx", b"just text that is not a zip", "not a readable Excel workbook"),
    ],
)
def test_a_file_that_is_not_an_office_zip_is_rejected_saying_what_to_do(filename: str, data: bytes, says: str) -> None:
    with pytest.raises(DocumentRejected) as caught:
        parse_document(data, filename)
    assert filename in caught.value.message
    assert says in caught.value.message


def test_a_zip_that_is_not_a_word_document_is_damaged() -> None:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("hello.txt", "no [Content_Types].xml here")
    with pytest.raises(DocumentRejected) as caught:
        parse_document(out.getvalue(), "notes.docx")
    assert "damaged Word document" in caught.value.message


def test_a_zip_bomb_is_refused_before_anything_is_unpacked() -> None:
    """A few hundred KiB that would expand past the bound (zeros compress ~1000:1)."""
    real = build_docx(["small"])
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as bomb:
        with zipfile.ZipFile(io.BytesIO(real)) as source:
            for member in source.infolist():
                bomb.writestr(member, source.read(member))
        with bomb.open("word/media/padding.bin", "w") as padding:
            block = b"\0" * (1024 * 1024)
            for _ in range(MAX_UNCOMPRESSED_BYTES // len(block) + 1):
                padding.write(block)
    data = out.getvalue()
    assert len(data) < 2 * 1024 * 1024
    with pytest.raises(DocumentRejected) as caught:
        parse_document(data, "bomb.docx")
    assert "would expand to 129 MiB" in caught.value.message
