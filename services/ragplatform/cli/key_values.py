"""`KEY=VALUE` command-line pairs (`--filter`, `--label`), parsed strictly: a malformed pair is a
usage error that names it, never silently dropped."""

from __future__ import annotations

import typer


def parse_pairs(items: list[str], option: str) -> dict[str, str]:
    """`["a=1", "b=x=y"]` -> `{"a": "1", "b": "x=y"}`; a later repeat of a key wins."""
    pairs: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise typer.BadParameter(f"{item!r} is not KEY=VALUE (e.g. {option} department=finance)")
        pairs[key.strip()] = value
    return pairs
