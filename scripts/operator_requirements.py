"""Print the requirements of the installed package's `operator` extra, one per line.

The operator image runs this after `pip install --no-deps .` and installs what it prints, so the
image gets the operator's dependencies (bounded in pyproject.toml) and none of the services'.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from importlib.metadata import requires

_OPERATOR_EXTRA = re.compile(r"""extra\s*==\s*["']operator["']""")


def pick_operator_requirements(requires_dist: Iterable[str]) -> list[str]:
    """The `operator` extra's requirements among a distribution's Requires-Dist lines, without
    their environment markers."""
    return [line.split(";", 1)[0].strip() for line in requires_dist if _OPERATOR_EXTRA.search(line)]


def main() -> None:
    wanted = pick_operator_requirements(requires("ragplatform") or [])
    if not wanted:
        raise SystemExit("the installed ragplatform distribution declares no `operator` extra")
    print("\n".join(wanted))


if __name__ == "__main__":
    main()
