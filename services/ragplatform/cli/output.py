"""Machine-readable output for `--json`: one JSON object per result, or one per line for streams.

Protobuf messages follow protobuf's canonical JSON mapping (as grpcurl prints them), with the
proto field names and every field present (a script can rely on `cached: false` being there);
as that mapping says, 64-bit integers (`size_bytes`) are JSON strings.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import typer
from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message

JSON_OPTION = typer.Option(False, "--json", help="Print JSON (one object; JSON lines for streamed answers).")


def message_dict(message: Message) -> dict[str, Any]:
    """A protobuf message as plain JSON-able data (proto field names, defaults included)."""
    return MessageToDict(
        message,
        preserving_proto_field_name=True,
        always_print_fields_with_no_presence=True,
    )


def print_json(data: Any) -> None:
    """One compact JSON object on its own line on stdout, flushed (for pipes and `jq`)."""
    sys.stdout.write(json.dumps(data, ensure_ascii=False, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def print_json_error(code: str, message: str) -> None:
    """An error as one JSON object on stderr: {"error": {"code": ..., "message": ...}}."""
    sys.stderr.write(json.dumps({"error": {"code": code, "message": message}}, ensure_ascii=False) + "\n")
