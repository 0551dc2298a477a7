#!/usr/bin/env python3
"""Write docs/configuration.md from the typed settings (services/ragplatform/core/settings.py).

The settings classes are the contract: the names the operator renders and the services read.
Generating the table from them keeps the document true; `--check` exits 1 when the file on disk
differs from what the settings say (tests/unit/test_config_docs.py runs the same comparison).

    python scripts/gen_config_docs.py          # rewrite docs/configuration.md
    python scripts/gen_config_docs.py --check  # fail if it is stale
"""

from __future__ import annotations

import argparse
import sys
import typing
from enum import Enum
from pathlib import Path
from typing import Any

from pydantic import SecretStr
from pydantic.fields import FieldInfo

from ragplatform.core.settings import ENV_PREFIX, SERVICE_NAMES, SETTINGS_BY_SERVICE, CommonSettings, ServiceName

DOC_PATH = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"

HEADER = """\
# Configuration

Every service process is configured only through environment variables with the `RAG_` prefix.
This table is generated from `services/ragplatform/core/settings.py` by
`python scripts/gen_config_docs.py`; a test fails when it is stale, so it always matches what
the services read and what the operator renders. Do not edit it by hand.

Services: `gateway`, `ingestion`, `ingestion-worker`, `retrieval`, `generation`, `conversation`
(as in `ragplatform serve <service>`). A variable a service does not read is ignored by it.
Variables marked **secret** should come from a Kubernetes Secret (`valueFrom.secretKeyRef`).
Credentials inside any URL (`user:password@`, and query parameters such as `token=` or
`api_key=`) are replaced by `***` in every log line and error message; clients never see an
internal endpoint's address.

Uploaded documents are parsed within limits (`RAG_PARSE_*`): each worker parses in a few
persistent child processes, each limited in memory, with a deadline per document; PDFs may
expand to at most `RAG_PARSE_MAX_CONTENT_MB` of page content and have at most
`RAG_PARSE_MAX_PAGES` pages; HTML may nest at most 256 elements deep (the HTML parser's own
ceiling). A document over a limit ends as a FAILED job whose reason names the setting to raise;
it is not retried. A worker needs memory for its parser processes on top of its own: up to
`RAG_PARSE_PROCESSES` x `RAG_PARSE_MEMORY_MB` in the worst case (each idles at ~75 MB); if the
container's limit is reached first, the kernel stops a parser process (they ask to be its first
choice), never the worker, and the document fails the same way.

Tracing is configured by OpenTelemetry's standard `OTEL_*` variables (off unless an OTLP endpoint
or exporter is named): see [observability.md](observability.md#tracing-opentelemetry).

Invalid values stop the service at start-up with a message naming each bad variable.

| Variable | Default | Services | Description |
|---|---|---|---|
"""


def _is_secret(field: FieldInfo) -> bool:
    annotation = field.annotation
    return annotation is SecretStr or SecretStr in typing.get_args(annotation)


def _default(field: FieldInfo) -> str:
    value: Any = field.get_default(call_default_factory=True)
    if value is None or value == "":
        return "(empty)"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, Enum):
        value = value.value
    return f"`{value}`"


def _defaults(name: str, readers: list[ServiceName]) -> str:
    """The setting's default, with the services whose own default differs named after it."""
    by_service = {s: _default(SETTINGS_BY_SERVICE[s].model_fields[name]) for s in readers}
    usual = max(by_service.values(), key=list(by_service.values()).count)
    others = ", ".join(f"{service}: {value}" for service, value in by_service.items() if value != usual)
    return f"{usual} ({others})" if others else usual


def _escape(text: str) -> str:
    return " ".join(text.replace("|", "\\|").split())


def rows() -> list[tuple[str, str, str, str]]:
    """(variable, default, services, description) for every setting, common ones first."""
    names: list[str] = list(CommonSettings.model_fields)
    for cls in SETTINGS_BY_SERVICE.values():
        names += [n for n in cls.model_fields if n not in names]
    table = []
    for name in names:
        readers = [s for s in SERVICE_NAMES if name in SETTINGS_BY_SERVICE[s].model_fields]
        # Any class that has the field describes it the same way (fields are inherited); take
        # the first reader's.
        field = SETTINGS_BY_SERVICE[readers[0]].model_fields[name]
        services = "all" if len(readers) == len(SERVICE_NAMES) else ", ".join(readers)
        description = _escape(field.description or "")
        if _is_secret(field):
            description = "**secret** · " + description
        table.append((ENV_PREFIX + name.upper(), _defaults(name, readers), services, description))
    return table


def render() -> str:
    lines = [f"| `{var}` | {default} | {services} | {description} |" for var, default, services, description in rows()]
    return HEADER + "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="exit 1 if docs/configuration.md is stale")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = DOC_PATH.read_text(encoding="utf-8") if DOC_PATH.exists() else ""
        if current != text:
            print(f"{DOC_PATH} is stale: run `python scripts/gen_config_docs.py`", file=sys.stderr)
            return 1
        return 0
    DOC_PATH.write_text(text, encoding="utf-8")
    print(f"wrote {DOC_PATH} ({len(text.splitlines())} lines)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
