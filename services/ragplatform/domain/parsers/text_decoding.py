"""Bytes to text for the text formats (plain text, Markdown, HTML)."""

from __future__ import annotations

import codecs
import re

from ragplatform.domain.content_types import utf16_without_bom
from ragplatform.domain.errors import DocumentRejected

# Above this share of control characters the "text" is almost certainly a binary file that was
# given a text extension; indexing it would only fill the vector store with noise.
_MAX_CONTROL_CHAR_RATIO = 0.01
# Unicode category Cc (C0, DEL, C1) minus the whitespace ones; a regex counts them at C speed
# (a per-character loop took 0.4 s a megabyte).
_CONTROL_CHARS = re.compile("[\x00-\x08\x0e-\x1f\x7f-\x9f]")
_BOMS: tuple[tuple[bytes, str], ...] = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


def decode_text(data: bytes, filename: str) -> str:
    """Decode a text file: a byte-order mark decides first, then UTF-8, then Windows-1252.

    Returns the text with `\\r\\n` and `\\r` turned into `\\n` and no BOM. Raises
    `DocumentRejected` with an actionable message when the bytes are not text (NUL bytes, a high
    share of control characters, or bytes no supported encoding can read).
    """
    text = _decode(data, filename)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    _reject_binary(text, filename)
    return text


def _decode(data: bytes, filename: str) -> str:
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            try:
                return data.decode(encoding)
            except UnicodeDecodeError as exc:
                raise DocumentRejected(
                    f"{filename!r} starts with a {encoding.upper()} byte-order mark but is not valid "
                    f"{encoding.upper()} ({exc.reason} at byte {exc.start}); re-save it as UTF-8 and "
                    "upload again."
                ) from None
    if b"\x00" in data and (utf16 := utf16_without_bom(data)) is not None:
        return data.decode(utf16)
    if b"\x00" in data:
        raise DocumentRejected(
            f"{filename!r} contains NUL bytes, so it is a binary file rather than text; upload a text, "
            "Markdown, HTML or PDF file instead."
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    try:
        # The usual encoding of older Windows text files; strict, so junk bytes still fail.
        return data.decode("cp1252")
    except UnicodeDecodeError:
        raise DocumentRejected(
            f"{filename!r} is neither UTF-8 nor Windows-1252 text (it may be a binary file); "
            "re-save it as UTF-8 and upload again."
        ) from None


def _reject_binary(text: str, filename: str) -> None:
    if not text:
        return
    control = len(_CONTROL_CHARS.findall(text))
    if control / len(text) > _MAX_CONTROL_CHAR_RATIO:
        raise DocumentRejected(
            f"{filename!r} looks like a binary file ({control} control characters in {len(text)}); "
            "upload a text, Markdown, HTML, PDF or Office (.docx, .pptx, .xlsx) file instead."
        )


_MANY_NEWLINES = re.compile(r"\n{3,}")


def tidy_whitespace(text: str) -> str:
    """Collapse runs of spaces within lines, trim each line, keep at most one blank line between
    paragraphs, and strip the ends."""
    # str.split() splits a line at runs of exactly the characters a regex's \s matches (every
    # str.isspace() one) and drops them at its ends: the per-line regex substitution and strip
    # it replaces gave the same text for 2.3x the CPU (every ingested document goes through it).
    lines = [" ".join(line.split()) for line in text.split("\n")]
    return _MANY_NEWLINES.sub("\n\n", "\n".join(lines)).strip()
