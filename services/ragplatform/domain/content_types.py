"""Which document types the platform ingests, and how an upload's type is decided.

Ingestion calls `detect_content_type` at upload so that an unsupported file is refused before
anything is stored; the worker's parser dispatches on the same canonical names.
"""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Final

from ragplatform.domain.errors import InvalidArgument

PLAIN_TEXT: Final = "text/plain"
MARKDOWN: Final = "text/markdown"
HTML: Final = "text/html"
PDF: Final = "application/pdf"
DOCX: Final = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
PPTX: Final = "application/vnd.openxmlformats-officedocument.presentationml.presentation"
XLSX: Final = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

#: The canonical content types the parsers understand.
SUPPORTED_CONTENT_TYPES: Final[tuple[str, ...]] = (PLAIN_TEXT, MARKDOWN, HTML, PDF, DOCX, PPTX, XLSX)

#: File extensions (lower case, with the dot) and the canonical type each stands for.
EXTENSIONS: Final[dict[str, str]] = {
    ".txt": PLAIN_TEXT,
    ".text": PLAIN_TEXT,
    ".log": PLAIN_TEXT,
    ".csv": PLAIN_TEXT,
    ".md": MARKDOWN,
    ".markdown": MARKDOWN,
    ".mdown": MARKDOWN,
    ".html": HTML,
    ".htm": HTML,
    ".xhtml": HTML,
    ".pdf": PDF,
    ".docx": DOCX,
    ".pptx": PPTX,
    ".xlsx": XLSX,
}

# Other names clients send for the same formats (browsers, `mimetypes`, curl, old tools).
_ALIASES: Final[dict[str, str]] = {
    "text/x-markdown": MARKDOWN,
    "text/x-md": MARKDOWN,
    "application/xhtml+xml": HTML,
    "application/x-pdf": PDF,
    "text/csv": PLAIN_TEXT,
}

# Declared types that say nothing about the content; the extension decides instead.
_UNINFORMATIVE: Final[frozenset[str]] = frozenset({"", "application/octet-stream", "binary/octet-stream"})


def normalize_content_type(declared: str) -> str:
    """`"Text/HTML; charset=utf-8"` -> `"text/html"`; aliases map to their canonical name."""
    base = declared.split(";", 1)[0].strip().lower()
    return _ALIASES.get(base, base)


def supported_types_hint() -> str:
    """A human-readable list of what is accepted, for error messages. The Office Open XML types
    are named by extension: their MIME names are too long to help anyone in a message."""
    extensions = ", ".join(sorted(EXTENSIONS))
    types = ", ".join(t for t in SUPPORTED_CONTENT_TYPES if t not in (DOCX, PPTX, XLSX))
    return f"plain text, Markdown, HTML, PDF, Word, PowerPoint or Excel ({types}; files ending {extensions})"


def detect_content_type(filename: str, declared: str = "") -> str:
    """Return the canonical content type of an upload, or raise `InvalidArgument`.

    A known file extension wins over the declared type, because clients often declare
    `text/plain` or `application/octet-stream` for Markdown and PDF files. Without a known
    extension, a supported declared type is used. Anything else is refused with a message that
    lists what is accepted. The result is always one of `SUPPORTED_CONTENT_TYPES`.
    """
    suffix = PurePosixPath(filename.replace("\\", "/")).suffix.lower()
    by_extension = EXTENSIONS.get(suffix)
    if by_extension is not None:
        return by_extension
    normalized = normalize_content_type(declared)
    if normalized in SUPPORTED_CONTENT_TYPES:
        return normalized
    what = f"content type {shown(declared)!r}" if normalized not in _UNINFORMATIVE else "no usable content type"
    raise InvalidArgument(
        f"cannot ingest {shown(filename) or 'the upload'!r}: unsupported file type ({what}, "
        f"extension {shown(suffix, 20) or 'none'!r}). Upload {supported_types_hint()}."
    )


def shown(value: str, limit: int = 80) -> str:
    """A client-sent value as an error message may quote it: at most `limit` characters."""
    return value if len(value) <= limit else value[: limit - 1] + "…"


def utf16_without_bom(data: bytes) -> str | None:
    """`utf-16-le` or `utf-16-be` when the bytes look like UTF-16 text saved without a byte-order
    mark (mostly Latin text: every other byte zero, on one side), else None. Tools on Windows
    write such files; without this their NUL bytes make them look binary."""
    sample = data[:4096]
    if len(sample) < 4 or len(sample) % 2:
        return None
    pairs = len(sample) // 2
    zeros_at_odd = sample[1::2].count(0)
    zeros_at_even = sample[0::2].count(0)
    candidates = ((zeros_at_odd, zeros_at_even, "utf-16-le"), (zeros_at_even, zeros_at_odd, "utf-16-be"))
    for zeros, other, encoding in candidates:
        if zeros >= 0.9 * pairs and other <= 0.02 * pairs:
            try:
                data.decode(encoding)
            except UnicodeDecodeError:
                return None
            return encoding
    return None


def is_supported(filename: str, declared: str = "") -> bool:
    """True when `detect_content_type` would accept this file (for listing folders to ingest)."""
    try:
        detect_content_type(filename, declared)
    except InvalidArgument:
        return False
    return True
