"""Parse sandbox: what bounding the parsers costs an ordinary document, and what it saves on a
hostile one, measured side by side in one run.

    python bench/parse_sandbox.py [--docs 300]

Per small document (text, Markdown, HTML, a 1-page PDF), one at a time as one worker job loop
does it: `parse_document` called directly (the floor), the same through a sandbox child (every
file sent to the child), and through the default policy (small text formats stay in-process).
Then the hostile files of issue 10: a 60-page PDF whose pages expand to 70 MB each, and 100,000
nested `<div>`s (1.1 MB): seconds to a rejection and the parser process's peak memory.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ragplatform.domain.errors import DocumentRejected
from ragplatform.domain.parsers.limits import MIB
from ragplatform.domain.parsing import parse_document
from ragplatform.ingestion.parse_sandbox import ParseSandbox, SandboxPolicy
from tests.support.pdf_writer import build_decompression_bomb_pdf, build_pdf

SENTENCE = "The Zephyr-9 pump delivers 310 cubic metres per hour at up to 42 bar. "
SMALL_DOCS: dict[str, bytes] = {
    "note.txt": (SENTENCE * 12).encode(),
    "manual.md": ("# Zephyr-9\n\n" + "\n\n".join(f"## Part {i}\n\n{SENTENCE * 3}" for i in range(4))).encode(),
    "page.html": (
        "<html><head><title>Zephyr</title></head><body>"
        + "".join(f"<h2>Part {i}</h2><p>{SENTENCE * 3}</p>" for i in range(4))
        + "</body></html>"
    ).encode(),
    "sheet.pdf": build_pdf([[SENTENCE[:60]] * 12]),
}


def rss_mb(pid: int, field: str = "VmRSS:") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field):
            return int(line.split()[1]) / 1024
    return 0.0


async def per_doc_ms(parsers: list, name: str, data: bytes, count: int, rounds: int = 5) -> list[float]:  # type: ignore[type-arg]
    """ms per document for each parser: rounds alternate between them (the machine is shared, so
    its load drifts), and each parser's best round counts."""
    best = [float("inf")] * len(parsers)
    for parse in parsers:
        await parse(data, name, "")  # warm
    for _ in range(rounds):
        for i, parse in enumerate(parsers):
            start = time.perf_counter()
            for _ in range(max(1, count // rounds)):
                await parse(data, name, "")
            best[i] = min(best[i], (time.perf_counter() - start) / max(1, count // rounds) * 1000)
    return best


async def main(count: int) -> None:
    async def direct(data: bytes, name: str, content_type: str) -> object:
        return parse_document(data, name, content_type)

    every_file = ParseSandbox(SandboxPolicy(processes=1, in_process_max_bytes=0))
    default = ParseSandbox(SandboxPolicy(processes=1))
    started = time.perf_counter()
    await asyncio.gather(every_file.start(), default.start())
    print(f"two sandboxes of one parser process each ready in {time.perf_counter() - started:.2f} s")
    print(
        f"{'document':<10} {'bytes':>6} {'in-process':>11} {'sandboxed':>10} {'overhead':>9} {'default':>8}  (ms/doc)"
    )
    try:
        for name, data in SMALL_DOCS.items():
            floor, boxed, usual = await per_doc_ms([direct, every_file.parse, default.parse], name, data, count)
            print(f"{name:<10} {len(data):>6} {floor:>11.3f} {boxed:>10.3f} {boxed - floor:>9.3f} {usual:>8.3f}")
        bomb = build_decompression_bomb_pdf(pages=60, expanded_bytes_per_page=70 * MIB)
        nested = ("<html><body>" + "<div>" * 100_000 + "x" + "</div>" * 100_000 + "</body></html>").encode()
        child = every_file._children[0].process.pid
        print(f"parser process before the hostile files: {rss_mb(child):.0f} MB resident")
        for name, data in (("bomb.pdf", bomb), ("nested.html", nested)):
            started = time.perf_counter()
            try:
                await every_file.parse(data, name, "")
                outcome = "parsed"
            except DocumentRejected as exc:
                outcome = exc.message[:70] + "..."
            seconds = time.perf_counter() - started
            peak = rss_mb(child, "VmHWM:")
            print(f"{name}: {len(data) / MIB:.1f} MB, {seconds:.2f} s, parser peak so far {peak:.0f} MB: {outcome}")
    finally:
        await asyncio.gather(every_file.close(), default.close())


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=300, help="documents per measurement")
    asyncio.run(main(parser.parse_args().docs))
