"""The test corpus in tests/fixtures/docs/: real documents with distinctive facts, and the
questions whose answers live in exactly one of them (for end-to-end tests of ingest + ask).

`corpus/` holds documents that must ingest; `invalid/` holds files that must be refused, each
for a reason a person can act on.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

DOCS_DIR = Path(__file__).resolve().parent.parent / "fixtures" / "docs"
CORPUS_DIR = DOCS_DIR / "corpus"
INVALID_DIR = DOCS_DIR / "invalid"

ZEPHYR_MD = CORPUS_DIR / "zephyr-9-pump-manual.md"
FERRY_TXT = CORPUS_DIR / "harbor-city-ferry-timetable.txt"
AURORA_HTML = CORPUS_DIR / "aurora-cafe.html"
KESTREL_PDF = CORPUS_DIR / "kestrel-x2-drone-datasheet.pdf"
NORDLYS_TXT = CORPUS_DIR / "nordlys-station-log.txt"  # long enough to make several chunks

CORRUPT_PDF = INVALID_DIR / "corrupt.pdf"  # a truncated PDF: job FAILED, "damaged or incomplete PDF"
IMAGE_ONLY_PDF = INVALID_DIR / "scanned-image-only.pdf"  # pages without text: "run it through OCR"
EMPTY_TXT = INVALID_DIR / "empty.txt"  # 0 bytes
DAMAGED_PPTX = INVALID_DIR / "slides.pptx"  # a zip header and no presentation: job FAILED, "not a readable"


@dataclass(frozen=True)
class Fact:
    """A question, the one document that answers it, and words the answer must contain."""

    question: str
    filename: str
    answer_contains: str


FACTS: tuple[Fact, ...] = (
    Fact("What is the maximum pressure of the Zephyr-9 pump?", ZEPHYR_MD.name, "42 bar"),
    Fact("What material is the Zephyr-9 impeller made of?", ZEPHYR_MD.name, "duplex stainless steel"),
    Fact("When does the last night ferry leave Pier 7?", FERRY_TXT.name, "23:40"),
    Fact("What is the Aurora Café's signature drink?", AURORA_HTML.name, "cardamom cold brew"),
    Fact("What is the maximum flight time of the Kestrel X2 drone?", KESTREL_PDF.name, "38 minutes"),
    Fact("How many litres does the Nordlys backup generator tank hold?", NORDLYS_TXT.name, "900 litres"),
)

#: Text that sits in the HTML page's script and nav elements and must never be indexed.
HTML_BOILERPLATE_MARKERS = ("SECRET_TRACKING_TOKEN", "NAVIGATION-ONLY-LINK")
