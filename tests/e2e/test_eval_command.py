"""`ragplatform eval` against the platform as separate processes, on the README's example corpus
and the question file shipped for it."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.e2e.conftest import RunningPlatform

pytestmark = pytest.mark.e2e

QUESTIONS = Path(__file__).resolve().parents[1] / "fixtures" / "eval" / "corpus-questions.tsv"


def run_eval(platform: RunningPlatform, *args: str) -> str:
    return platform.processes.run_cli(
        "eval", *args, "--gateway", platform.gateway, "--api-key", platform.key_a, timeout=180
    )


def test_the_shipped_questions_score_search_and_asks(platform: RunningPlatform) -> None:
    report = json.loads(run_eval(platform, str(QUESTIONS), "--json").strip().splitlines()[-1])
    print(f"\nscores on the example corpus (hashing embedder, extractive answers): {report['scores']}")
    questions = sum(1 for line in QUESTIONS.read_text().splitlines() if line.strip() and not line.startswith("#"))
    assert set(report["scores"]) == {"search", "ask"}
    for mode, scores in report["scores"].items():
        assert scores["questions"] == questions, mode
        assert 0.0 <= scores["hit_at_1"] <= scores["hit_at_5"] <= 1.0
        assert scores["hit_at_1"] <= scores["mrr_at_10"] <= scores["hit_at_5"]
    # Every shipped question is answerable from the corpus, and its document is small.
    assert report["scores"]["search"]["hit_at_5"] >= 0.9
    assert report["scores"]["ask"]["hit_at_5"] >= 0.8
    misses = {(m["mode"], m["question"]) for m in report["misses"]}
    assert len(misses) == len(report["misses"])


def test_a_wrong_expectation_is_listed_as_a_miss_with_what_came_first(
    platform: RunningPlatform, tmp_path: Path
) -> None:
    questions = tmp_path / "wrong.jsonl"
    questions.write_text(
        json.dumps({"question": "What is the maximum pressure of the Zephyr-9 pump?", "document": "aurora-cafe.html"})
        + "\n"
        + json.dumps(
            {
                "question": "When does the last night ferry leave Pier 7?",
                "document": "harbor-city-ferry-timetable.txt",
                "passage": "23:40",
            }
        )
        + "\n"
    )
    output = run_eval(platform, str(questions), "--mode", "search")
    assert "hit@1" in output
    assert "MRR@10" in output
    # One of two questions found its document first: hit@1 0.50, and the miss names what came first.
    assert "0.50" in output
    assert "misses" in output
    assert "zephyr-9-pump-manual.md" in output
    report = json.loads(run_eval(platform, str(questions), "--mode", "search", "--json").strip().splitlines()[-1])
    assert report["scores"]["search"]["hit_at_1"] == 0.5
    (miss,) = report["misses"]
    assert (miss["document"], miss["first_result"]) == ("aurora-cafe.html", "zephyr-9-pump-manual.md")
    assert miss["rank"] != 1


def test_a_malformed_question_file_is_a_usage_error_naming_the_line(platform: RunningPlatform, tmp_path: Path) -> None:
    questions = tmp_path / "bad.tsv"
    questions.write_text("What is the maximum pressure?\tzephyr-9-pump-manual.md\nno tab on this line\n")
    with pytest.raises(subprocess.CalledProcessError) as info:
        run_eval(platform, str(questions))
    assert info.value.returncode == 2
    assert "line 2" in info.value.output
