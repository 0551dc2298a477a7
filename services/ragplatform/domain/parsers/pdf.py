"""PDF to text with pypdf. Corrupt, password-protected and image-only PDFs are refused with a
message that says what to do, because retrying cannot help them."""

from __future__ import annotations

import io
import logging

from pypdf import PdfReader
from pypdf.errors import DependencyError, FileNotDecryptedError

from ragplatform.domain.content_types import PDF
from ragplatform.domain.errors import DocumentRejected
from ragplatform.domain.parsers.document import ParsedDocument
from ragplatform.domain.parsers.text_decoding import tidy_whitespace

# pypdf logs a warning for every irregularity it repairs; our own error messages say what matters.
logging.getLogger("pypdf").setLevel(logging.ERROR)


def parse_pdf(data: bytes, filename: str) -> ParsedDocument:
    """Text of every page, pages separated by a blank line; title from the PDF's metadata.

    Raises `DocumentRejected` when the file is not a readable PDF, needs a password, or has no
    extractable text (scanned images).
    """
    # The PDF header may follow up to 1 KiB of junk (PDF 1.7, annex H).
    if b"%PDF-" not in data[:1024]:
        raise DocumentRejected(
            f"{filename!r} is not a PDF (it has no '%PDF-' header); upload the original PDF "
            "or give the file its real extension."
        )
    try:
        reader = PdfReader(io.BytesIO(data))
        _decrypt_if_needed(reader, filename)
        pages = [page.extract_text() or "" for page in reader.pages]
        title = _metadata_title(reader)
    except DocumentRejected:
        raise
    except (FileNotDecryptedError, DependencyError):
        raise _password_protected(filename) from None
    # A damaged file makes pypdf fail in many ways (PdfReadError, ValueError, KeyError, ...);
    # every one of them means the same thing to the person who uploaded it.
    except Exception as exc:
        raise DocumentRejected(
            f"{filename!r} is a damaged or incomplete PDF that cannot be read ({type(exc).__name__}: "
            f"{str(exc)[:200]}); open it in a PDF viewer, re-export or re-download it, and upload again."
        ) from None
    text = tidy_whitespace("\n\n".join(page.strip() for page in pages))
    if not text:
        raise DocumentRejected(
            f"{filename!r} has {len(pages)} page(s) but no extractable text (it is probably scanned "
            "images); run it through OCR and upload the result."
        )
    return ParsedDocument(text=text, content_type=PDF, title=title, page_count=len(pages))


def _decrypt_if_needed(reader: PdfReader, filename: str) -> None:
    if not reader.is_encrypted:
        return
    # Many PDFs are "encrypted" only to restrict printing or editing, with an empty user
    # password; those open without asking anyone for anything.
    if not reader.decrypt(""):
        raise _password_protected(filename)


def _password_protected(filename: str) -> DocumentRejected:
    return DocumentRejected(
        f"{filename!r} is password-protected; remove the password (for example by printing it to a "
        "new PDF) and upload again."
    )


def _metadata_title(reader: PdfReader) -> str:
    try:
        metadata = reader.metadata
        title = metadata.title if metadata is not None else None
    except Exception:  # a broken info dictionary must not cost us the text
        return ""
    return " ".join(str(title).split()) if title else ""
