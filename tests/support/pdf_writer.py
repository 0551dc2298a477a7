"""A minimal PDF writer for test documents: text pages in Helvetica, an optional title, and
pages without any text (what a scanned, image-only PDF looks like to a text extractor).

It writes the file format by hand (header, objects, cross-reference table, trailer) so that the
tests need no PDF-generating dependency; pypdf reads the result like any other PDF.
"""

from __future__ import annotations

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
    objects: list[bytes] = []
    page_ids = [4 + 2 * i for i in range(len(pages))]
    objects.append(b"<< /Type /Catalog /Pages 2 0 R >>")
    kids = " ".join(f"{pid} 0 R" for pid in page_ids)
    objects.append(f"<< /Type /Pages /Kids [{kids}] /Count {len(pages)} >>".encode())
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>")
    for index, lines in enumerate(pages):
        content_id = page_ids[index] + 1
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >> "
            f"/Contents {content_id} 0 R >>".encode()
        )
        stream = _content_stream(lines)
        objects.append(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
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
