"""A minimal PDF writer for test documents: text pages in Helvetica, an optional title, and
pages without any text (what a scanned, image-only PDF looks like to a text extractor).

It writes the file format by hand (header, objects, cross-reference table, trailer) so that the
tests need no PDF-generating dependency; pypdf reads the result like any other PDF.
"""

from __future__ import annotations

import zlib

_LINE_HEIGHT = 16
_TOP = 760
_LEFT = 72


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def _content_stream(lines: list[str]) -> bytes:
    if not lines:
        # An image-only page draws a grey rectangle and no text at all.
        return b"0.8 g 72 400 468 300 re f"
    ops = ["BT", "/F1 11 Tf", f"{_LEFT} {_TOP} Td", f"{_LINE_HEIGHT} TL"]
    for line in lines:
        ops.append(f"({_escape(line)}) Tj T*")
    ops.append("ET")
    return "\n".join(ops).encode("latin-1")


def build_pdf(pages: list[list[str]], title: str = "") -> bytes:
    """A valid PDF with one page per entry of `pages`, each a list of text lines (an empty list
    makes a page with no text). Text must be Latin-1."""
    return _assemble([(_content_stream(lines), b"") for lines in pages], title)


def build_decompression_bomb_pdf(pages: int, expanded_bytes_per_page: int, filler: bytes = b" ") -> bytes:
    """A PDF whose every page is a Flate-compressed content stream that expands to
    `expanded_bytes_per_page` of `filler` (whitespace by default: valid, and compressing ~1000:1),
    as a hostile upload would be. One compressed stream is shared by every page's bytes."""
    compressor = zlib.compressobj(9)
    block = filler * (1024 * 1024 // len(filler))
    parts = [compressor.compress(block) for _ in range(expanded_bytes_per_page // len(block))]
    parts.append(compressor.compress(filler * ((expanded_bytes_per_page % len(block)) // len(filler))))
    parts.append(compressor.flush())
    stream = b"".join(parts)
    return _assemble([(stream, b" /Filter /FlateDecode")] * pages, "")


def _assemble(streams: list[tuple[bytes, bytes]], title: str) -> bytes:
    """Header, catalog, one page per (content stream, extra stream dictionary entries), an
    optional Info title, cross-reference table and trailer."""
    objects: list[bytes] = []
    page_ids = [4 + 2 * i for i in range(len(streams))]
    objects.append(b"<< /Type /Catalog /Pages 2 0 R >>")
    kids = " ".join(f"{pid} 0 R" for pid in page_ids)
    objects.append(f"<< /Type /Pages /Kids [{kids}] /Count {len(streams)} >>".encode())
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>")
    for index, (stream, extra) in enumerate(streams):
        content_id = page_ids[index] + 1
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >> "
            f"/Contents {content_id} 0 R >>".encode()
        )
        objects.append(b"<< /Length %d%s >>\nstream\n" % (len(stream), extra) + stream + b"\nendstream")
    info_id = 0
    if title:
        objects.append(f"<< /Title ({_escape(title)}) /Producer (ragplatform tests) >>".encode("latin-1"))
        info_id = len(objects)

    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    trailer = f"<< /Size {len(objects) + 1} /Root 1 0 R" + (f" /Info {info_id} 0 R" if info_id else "") + " >>"
    out += b"trailer\n" + trailer.encode() + b"\nstartxref\n%d\n%%%%EOF\n" % xref
    return bytes(out)
