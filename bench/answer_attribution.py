"""What inferred citations and the lexical follow-up rewrite cost in CPU, measured side by side
in one run against the floor every answer already pays: citations from the answer's [n] markers.

    python bench/answer_attribution.py [--repeat 2000]

Inputs are the shape of a real ask: five retrieved passages of ~256 tokens from the README's
example corpus, an answer of ~120 words (what a small model writes for RAG_LLM_MAX_TOKENS of a
few hundred), once with markers and once without; a four-turn conversation for the rewrite.
Only the generation service runs these (once per answer, once per follow-up).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ragplatform.domain.citations import assemble_citations
from ragplatform.domain.models import Role, ScoredPassage, Turn
from ragplatform.domain.query_rewrite import lexical_rewrite

CORPUS = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "docs" / "corpus"


def passages() -> list[ScoredPassage]:
    texts = [(p.name, p.read_text(errors="replace")) for p in sorted(CORPUS.glob("*.*")) if p.suffix != ".pdf"]
    result = []
    for n, (name, text) in enumerate(texts[:5] * 2):
        words = text.split()
        result.append(ScoredPassage(f"c{n}", f"d{n}", name, n, " ".join(words[:190]), 1.0 - n / 10))
    return result[:5]


ANSWER = (
    "The Zephyr-9 is a single-stage centrifugal pump built by Halvorsen Hydraulics. Its maximum pressure "
    "is 42 bar, and the mechanical seal is only certified to that figure. The impeller is cast in duplex "
    "stainless steel of grade 1.4462, which resists chloride corrosion, and the casing is nickel-aluminium "
    "bronze. Replace the mechanical seal every 1,800 operating hours, check the bearing temperature weekly "
    "and grease the motor bearings every 600 hours. The last night ferry leaves Pier 7 at 23:40 and the "
    "Aurora Café serves a cardamom cold brew, but neither concerns the pump."
)
MARKED = ANSWER.replace(" bar,", " bar [1],").replace("bronze.", "bronze [1].").replace("23:40", "23:40 [2]")
HISTORY = [
    Turn(Role.USER, "What is the maximum pressure of the Zephyr-9 pump?"),
    Turn(Role.ASSISTANT, "42 bar [1]."),
    Turn(Role.USER, "And its flow?"),
    Turn(Role.ASSISTANT, "310 cubic metres per hour [1]."),
]


def per_call_us(work: Callable[[], object], repeat: int) -> float:
    work()
    started = time.perf_counter()
    for _ in range(repeat):
        work()
    return (time.perf_counter() - started) / repeat * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=2000)
    args = parser.parse_args()
    given = passages()
    assert assemble_citations(ANSWER, given)[0].inferred  # the answer has no markers: inferred
    floor = per_call_us(lambda: assemble_citations(MARKED, given), args.repeat)
    inferred = per_call_us(lambda: assemble_citations(ANSWER, given), args.repeat)
    rewrite = per_call_us(lambda: lexical_rewrite("Is it quiet?", HISTORY), args.repeat)
    print(f"{'step':<46}{'µs/call':>10}{'x floor':>10}")
    print(f"{'citations from [n] markers (floor)':<46}{floor:>10.1f}{1.0:>10.2f}")
    print(f"{'citations inferred (no markers)':<46}{inferred:>10.1f}{inferred / floor:>10.2f}")
    print(f"{'lexical rewrite of a follow-up':<46}{rewrite:>10.1f}{rewrite / floor:>10.2f}")
    print(f"inferred: {[(c.index, c.filename) for c in assemble_citations(ANSWER, given)]}")


if __name__ == "__main__":
    main()
