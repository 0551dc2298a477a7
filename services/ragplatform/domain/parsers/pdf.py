"""PDF to text with pypdf. Corrupt, password-protected and image-only PDFs are refused with a
message that says what to do, because retrying cannot help them."""

from __future__ import annotations

import io
import logging

from pypdf import PdfReader, apply_configuration
from pypdf.errors import DependencyError, FileNotDecryptedError, LimitReachedError

from ragplatform.domain.content_types import PDF
from ragplatform.domain.errors import DocumentRejected
from ragplatform.domain.parsers.document import ParsedDocument
from ragplatform.domain.parsers.limits import MIB, ParseLimits
from ragplatform.domain.parsers.text_decoding import tidy_whitespace

# pypdf logs a warning for every irregularity it repairs; our own error messages say what matters.
logging.getLogger("pypdf").setLevel(logging.ERROR)


def parse_pdf(data: bytes, filename: str, limits: ParseLimits) -> ParsedDocument:
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
        # pypdf's own per-stream caps (75 MB by default) lowered to ours, for this call only.
        with apply_configuration(None, **_decompression_caps(limits.max_content_bytes)):
            reader = PdfReader(io.BytesIO(data))
            _decrypt_if_needed(reader, filename)
            pages = _page_texts(reader, filename, limits)
            title = _metadata_title(reader)
    except DocumentRejected:
        raise
    except LimitReachedError as exc:
        if "decompress" in str(exc).lower():
            raise _too_much_content(filename, limits) from None
        raise DocumentRejected(
            f"{filename!r} goes past one of the PDF reader's safety limits ({str(exc)[:200]}); it is malformed "
            "or built to exhaust the server. Re-export it from its source application, or split it, and upload again."
        ) from None
    except (FileNotDecryptedError, DependencyError):
        raise _password_protected(filename) from None
    # A damaged file makes pypdf fail in many ways (PdfReadError, ValueError, KeyError, ...);
    # every one of them means the same thing to the person who uploaded it.
    except MemoryError:
        raise  # not damage: the sandbox reports it as over the memory limit
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


def _page_texts(reader: PdfReader, filename: str, limits: ParseLimits) -> list[str]:
    """Each page's text, checking the page count first and the expanded size of each page's
    content before extracting from it: extraction costs ~0.3 s per MB of content, and a 4 MB
    file can expand to gigabytes."""
    count = len(reader.pages)
    if count > limits.max_pages:
        raise DocumentRejected(
            f"{filename!r} has {count} pages, more than the {limits.max_pages} allowed; split it into "
            "smaller PDFs, or raise RAG_PARSE_MAX_PAGES."
        )
    texts = []
    expanded = 0
    for page in reader.pages:
        contents = page.get_contents()
        expanded += len(contents.get_data()) if contents is not None else 0
        if expanded > limits.max_content_bytes:
            raise _too_much_content(filename, limits)
        texts.append(page.extract_text() or "")
    return texts


def _decompression_caps(max_bytes: int) -> dict[str, int]:
    cap = max_bytes + 1  # one byte over the limit is enough to know it is over
    return {
        "zlib_maximum_output_length": cap,
        "lzw_maximum_output_length": cap,
        "run_length_maximum_output_length": cap,
        "brotli_maximum_output_length": cap,
        "array_based_stream_maximum_output_length": cap,
    }


def _too_much_content(filename: str, limits: ParseLimits) -> DocumentRejected:
    return DocumentRejected(
        f"{filename!r} expands to more than {limits.max_content_bytes // MIB} MB of page content (ordinary "
        "PDFs hold far less; this one may be built to exhaust the server); split it into smaller PDFs, or "
        "raise RAG_PARSE_MAX_CONTENT_MB if you trust the file."
    )


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
