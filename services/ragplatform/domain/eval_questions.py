"""Question files for `ragplatform eval`: what each question should retrieve. Pure.

Two formats, chosen by the file's extension:

* TSV (`.tsv`, `.txt`): one question per line, `question<TAB>document[<TAB>passage text]`;
  blank lines and lines starting with `#` are skipped, and a first line `question<TAB>...` is
  taken as a header.
* JSONL (`.jsonl`, `.ndjson`): one object per line, `{"question": ..., "document": ...,
  "passage": ...}` (`passage` optional).

`document` is the expected document's file name or id; `passage` is text the relevant passage
contains.
"""

from __future__ import annotations

import json
from pathlib import PurePath

from ragplatform.domain.errors import InvalidArgument
from ragplatform.domain.retrieval_metrics import Expectation

TSV_SUFFIXES = (".tsv", ".txt")
JSONL_SUFFIXES = (".jsonl", ".ndjson")


def parse_question_file(name: str, text: str) -> list[Expectation]:
    """The questions in `text`, a file called `name` (its extension picks the format). Raises
    `InvalidArgument` naming the line and what is wrong, or when the file holds no question."""
    suffix = PurePath(name).suffix.lower()
    if suffix in TSV_SUFFIXES:
        questions = _parse_tsv(name, text)
    elif suffix in JSONL_SUFFIXES:
        questions = _parse_jsonl(name, text)
    else:
        raise InvalidArgument(
            f"{name}: unknown question file type {suffix or '(no extension)'!r}; use .tsv "
            '(question<TAB>document[<TAB>passage text]) or .jsonl ({"question": ..., "document": ...})'
        )
    if not questions:
        raise InvalidArgument(f"{name} holds no questions; add one per line")
    return questions


def _parse_tsv(name: str, text: str) -> list[Expectation]:
    questions = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        fields = [f.strip() for f in line.split("\t")]
        if number == 1 and fields[0].lower() == "question":
            continue  # a header
        if len(fields) < 2 or len(fields) > 3 or not fields[0] or not fields[1]:
            raise InvalidArgument(
                f"{name}, line {number}: expected question<TAB>document[<TAB>passage text], got {line[:80]!r}"
                + (" (no tab: are the columns separated by spaces?)" if "\t" not in line else "")
            )
        questions.append(Expectation(fields[0], fields[1], fields[2] if len(fields) == 3 else ""))
    return questions


def _parse_jsonl(name: str, text: str) -> list[Expectation]:
    questions = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InvalidArgument(f"{name}, line {number}: not JSON ({exc.msg}); write one object per line") from None
        if not isinstance(item, dict):
            raise InvalidArgument(f'{name}, line {number}: expected an object with "question" and "document"')
        question, document, passage = item.get("question"), item.get("document"), item.get("passage", "")
        if not isinstance(question, str) or not question.strip():
            raise InvalidArgument(f'{name}, line {number}: "question" must be a non-empty string')
        if not isinstance(document, str) or not document.strip():
            raise InvalidArgument(f'{name}, line {number}: "document" must be the expected document\'s file name or id')
        if not isinstance(passage, str):
            raise InvalidArgument(f'{name}, line {number}: "passage" must be a string (text the passage contains)')
        questions.append(Expectation(question.strip(), document.strip(), passage.strip()))
    return questions
