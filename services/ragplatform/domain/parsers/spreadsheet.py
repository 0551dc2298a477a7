"""Excel workbooks (.xlsx) to text with openpyxl: each sheet's rows, cell values only."""

from __future__ import annotations

import io

import openpyxl

from ragplatform.domain.content_types import XLSX
from ragplatform.domain.parsers.document import ParsedDocument
from ragplatform.domain.parsers.limits import ParseLimits
from ragplatform.domain.parsers.office_zip import check_office_zip, damaged
from ragplatform.domain.parsers.text_decoding import tidy_whitespace

KIND = "Excel workbook"


def parse_xlsx(data: bytes, filename: str, limits: ParseLimits) -> ParsedDocument:
    """Sheet by sheet (a blank line between sheets): a `Sheet: NAME` line, then one line per row
    with its non-empty cells separated by ` | `. Formulas give their last computed value (as the
    file stores it); charts and images are skipped. The title is the workbook's Title property.

    Raises `DocumentRejected` for a file that is not a readable .xlsx or expands beyond the
    bounds of `office_zip`.
    """
    check_office_zip(data, filename, KIND, ".xlsx")
    try:
        # read_only streams rows instead of building every cell object at once
        workbook = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
        try:
            sheets = []
            for sheet in workbook.worksheets:
                rows = [
                    " | ".join(
                        " ".join(str(value).split()) for value in row if value is not None and str(value).strip()
                    )
                    for row in sheet.iter_rows(values_only=True)
                ]
                body = "\n".join(row for row in rows if row)
                if body:
                    sheets.append(f"Sheet: {sheet.title}\n{body}")
            title = (workbook.properties.title or "").strip()
        finally:
            workbook.close()
    except MemoryError:
        raise  # not damage: the sandbox reports it as over the memory limit
    except Exception as exc:  # a damaged package fails in many ways; all mean the same to the uploader
        raise damaged(filename, KIND, exc) from None
    return ParsedDocument(text=tidy_whitespace("\n\n".join(sheets)), content_type=XLSX, title=title)
