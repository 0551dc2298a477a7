"""`ragplatform eval`: how well the platform retrieves on the user's own questions.

Runs every question of a question file (see `domain/eval_questions.py`) against the tenant of the
API key, through the gateway as any client would: `Search` (the ranked passages) and `Ask` (the
passages the answer cites, in citation order). Prints hit@1, hit@5 and MRR@10 per mode and the
questions that missed; `--json` prints the same as one object.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ragplatform.cli.exit_codes import ExitCode
from ragplatform.cli.output import JSON_OPTION, print_json
from ragplatform.cli.user_commands import GATEWAY_OPTION, KEY_OPTION, console, fail, run_client
from ragplatform.client import GatewayClient
from ragplatform.domain.errors import InvalidArgument
from ragplatform.domain.eval_questions import parse_question_file
from ragplatform.domain.retrieval_metrics import (
    Expectation,
    RankedResult,
    RetrievalScores,
    first_relevant_rank,
    score_ranks,
)
from ragplatform.v1 import gateway_pb2

#: Results fetched per search: MRR@10 looks this deep.
SEARCH_DEPTH = 10
#: A question file is a batch that meets the API key's rate limit by design (the default 20
#: requests/s is reached in seconds when answers come from the cache). A refused question waits
#: its turn -- each wait is the gateway's hint, about 1/rate, so this is ~10 s of waiting at
#: 20/s -- instead of aborting the whole run with RESOURCE_EXHAUSTED after the client's usual
#: few retries, which is what a run of ~80 questions did at `--concurrency 4`.
EVAL_RATE_LIMIT_RETRIES = 200


class Mode(StrEnum):
    search = "search"
    ask = "ask"
    both = "both"


@dataclass(frozen=True)
class Outcome:
    """One question in one mode: where the first relevant result was, and what came first."""

    mode: str
    expectation: Expectation
    rank: int | None
    top: str  # file name of the first result ("" when nothing came back)


def ranked_from_search(reply: gateway_pb2.GatewaySearchResponse) -> list[RankedResult]:
    return [RankedResult(p.document_id, p.filename, p.text) for p in reply.passages]


def ranked_from_answer(messages: list[gateway_pb2.AskResponse]) -> list[RankedResult]:
    """The passages the answer cites, in citation order, with their full text from `sources`."""
    sources = {p.chunk_id: p for m in messages if m.WhichOneof("event") == "sources" for p in m.sources.passages}
    done = next((m.done for m in messages if m.WhichOneof("event") == "done"), None)
    if done is None:
        return []
    return [
        RankedResult(c.document_id, c.filename, sources[c.chunk_id].text if c.chunk_id in sources else c.quote)
        for c in done.citations
    ]


async def _search(client: GatewayClient, question: str) -> list[RankedResult]:
    return ranked_from_search(await client.search(question, SEARCH_DEPTH))


async def _ask(client: GatewayClient, question: str) -> list[RankedResult]:
    return ranked_from_answer([m async for m in client.ask(question)])


RUNNERS: dict[str, Callable[[GatewayClient, str], Awaitable[list[RankedResult]]]] = {
    Mode.search: _search,
    Mode.ask: _ask,
}


async def evaluate(
    client: GatewayClient,
    questions: list[Expectation],
    modes: list[str],
    concurrency: int,
    progress: Progress,
) -> list[Outcome]:
    """Every question in every mode, `concurrency` calls at a time; outcomes in question order."""
    limit = asyncio.Semaphore(concurrency)
    task = progress.add_task("evaluating", total=len(questions) * len(modes))

    async def one(mode: str, expectation: Expectation) -> Outcome:
        async with limit:
            results = await RUNNERS[mode](client, expectation.question)
        progress.advance(task)
        return Outcome(
            mode, expectation, first_relevant_rank(results, expectation), results[0].filename if results else ""
        )

    return list(await asyncio.gather(*(one(mode, q) for mode in modes for q in questions)))


def scores_by_mode(outcomes: list[Outcome], modes: list[str]) -> dict[str, RetrievalScores]:
    return {mode: score_ranks([o.rank for o in outcomes if o.mode == mode]) for mode in modes}


def print_report(file: Path, outcomes: list[Outcome], scores: dict[str, RetrievalScores], max_misses: int) -> None:
    table = Table(title=f"retrieval on {file.name}")
    for column in ("mode", "questions", "hit@1", "hit@5", "MRR@10"):
        table.add_column(column, justify="left" if column == "mode" else "right")
    for mode, s in scores.items():
        table.add_row(mode, str(s.questions), f"{s.hit_at_1:.2f}", f"{s.hit_at_5:.2f}", f"{s.mrr_at_10:.3f}")
    console.print(table)
    misses = [o for o in outcomes if o.rank != 1]
    if not misses:
        console.print("every question found its document first")
        return
    miss_table = Table(title=f"misses (not first; showing {min(len(misses), max_misses)} of {len(misses)})")
    for column in ("mode", "question", "expected", "rank", "first result"):
        # File names stay whole (a script or a person searches for them); questions wrap.
        miss_table.add_column(column, no_wrap=column in ("expected", "first result"))
    for o in misses[:max_misses]:
        expected = o.expectation.document + (
            f" ({o.expectation.passage_text[:40]}…)" if o.expectation.passage_text else ""
        )
        rank = str(o.rank) if o.rank is not None else "-"
        miss_table.add_row(o.mode, o.expectation.question, expected, rank, o.top or "(nothing)")
    console.print(miss_table)


def report_json(outcomes: list[Outcome], scores: dict[str, RetrievalScores]) -> dict[str, object]:
    return {
        "scores": {
            mode: {"questions": s.questions, "hit_at_1": s.hit_at_1, "hit_at_5": s.hit_at_5, "mrr_at_10": s.mrr_at_10}
            for mode, s in scores.items()
        },
        "misses": [
            {
                "mode": o.mode,
                "question": o.expectation.question,
                "document": o.expectation.document,
                "passage": o.expectation.passage_text,
                "rank": o.rank,
                "first_result": o.top,
            }
            for o in outcomes
            if o.rank != 1
        ],
    }


def eval_command(
    questions_file: Path = typer.Argument(
        ..., help="Questions: .tsv (question<TAB>document[<TAB>passage text]) or .jsonl."
    ),
    mode: Mode = typer.Option(Mode.both, help="Measure search results, answers' citations, or both."),
    concurrency: int = typer.Option(4, min=1, max=64, help="Questions in flight at once."),
    max_misses: int = typer.Option(20, min=0, help="Misses to list."),
    gateway: str = GATEWAY_OPTION,
    api_key: str = KEY_OPTION,
    json_output: bool = JSON_OPTION,
) -> None:
    """Measure retrieval on your own questions: hit@1, hit@5 and MRR@10 for search and for asks.

    Each question names the document that answers it (file name or id) and, optionally, text the
    right passage contains. Search is scored on its top 10 passages, asks on the passages the
    answer cites. Asks are stored as conversations like any other."""
    if not questions_file.is_file():
        raise fail(f"{questions_file} does not exist or is not a file", ExitCode.USAGE, json_output)
    try:
        questions = parse_question_file(questions_file.name, questions_file.read_text(encoding="utf-8"))
    except (InvalidArgument, UnicodeDecodeError) as exc:
        raise fail(str(exc), ExitCode.USAGE, json_output) from None
    modes = [Mode.search.value, Mode.ask.value] if mode == Mode.both else [mode.value]

    async def action(client: GatewayClient) -> list[Outcome]:
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, console=console, disable=json_output, transient=True) as progress:
            return await evaluate(client, questions, modes, concurrency, progress)

    outcomes = run_client(gateway, api_key, action, json_output, EVAL_RATE_LIMIT_RETRIES)
    scores = scores_by_mode(outcomes, modes)
    if json_output:
        print_json(report_json(outcomes, scores))
    else:
        print_report(questions_file, outcomes, scores, max_misses)
