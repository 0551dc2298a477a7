"""What clients send that ends up in logs, errors and documents: request ids, filenames, content
types, and UTF-16 text saved without a byte-order mark."""

from __future__ import annotations

import pytest

from ragplatform.core.context import REQUEST_ID_MAX_CHARS, accepted_request_id
from ragplatform.domain.content_types import detect_content_type, shown, utf16_without_bom
from ragplatform.domain.errors import InvalidArgument
from ragplatform.domain.parsers.text_decoding import decode_text
from ragplatform.ingestion.service import UploadHeader, validate_header

TEXT = "Zephyr-9 pump manual.\nMaximum pressure: 12 bar.\n"


@pytest.mark.parametrize("sent", ["abc", "0f3c-9a/b.c:d_e", "a" * REQUEST_ID_MAX_CHARS])
def test_plain_request_ids_are_kept(sent: str) -> None:
    assert accepted_request_id(sent) == sent


@pytest.mark.parametrize(
    "sent", ["", "a" * (REQUEST_ID_MAX_CHARS + 1), "x" * 7000, "id\nforged line", "id with spaces"]
)
def test_other_request_ids_are_replaced_by_a_generated_one(sent: str) -> None:
    replaced = accepted_request_id(sent)
    assert replaced != sent
    assert accepted_request_id(replaced) == replaced  # the generated id is itself plain


def test_a_long_content_type_is_not_echoed_in_full() -> None:
    declared = "application/" + "x" * 5000
    with pytest.raises(InvalidArgument) as info:
        detect_content_type("upload.bin", declared)
    assert len(info.value.message) < 400
    assert "unsupported file type" in info.value.message
    assert shown("abc") == "abc"


@pytest.mark.parametrize(
    "filename",
    ["report\n2026.txt", "a\rb.txt", "\x1b[2J\x1b[31mred.txt", "tab\there.txt", "nul\x00.txt", "photo\u202etxt.exe"],
)
def test_filenames_with_control_characters_are_refused(filename: str) -> None:
    with pytest.raises(InvalidArgument, match="contains control characters") as info:
        validate_header(UploadHeader("acme", filename, "", {}))
    assert "\x1b" not in info.value.message
    assert "\n" not in info.value.message


def test_ordinary_unicode_filenames_are_accepted() -> None:
    assert validate_header(UploadHeader("acme", "Übersicht 2026 📈.md", "", {})).content_type == "text/markdown"


@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be"])
def test_utf16_without_a_bom_is_text(encoding: str) -> None:
    data = TEXT.encode(encoding)
    assert utf16_without_bom(data) == encoding
    assert decode_text(data, "notes.txt") == TEXT


@pytest.mark.parametrize(
    "data",
    [b"\x00\x01\x02\x03" * 100, b"plain ascii text", bytes(range(256)) * 4, b"\x00" * 64, b"a\x00b"],
    ids=["binary", "ascii", "all bytes", "all zero", "odd length"],
)
def test_other_bytes_are_not_taken_for_utf16(data: bytes) -> None:
    assert utf16_without_bom(data) is None
