"""A parser process of the parse sandbox (see parse_sandbox.py): `python -m
ragplatform.ingestion.parse_child FD`, where FD is its end of a socket pair.

It imports only the parsers (a child starts in about a second), reads its limits, applies them
to itself, says "ready", then answers one request at a time: (data, filename, content type) ->
(outcome, message, ParsedDocument | None), until the socket closes.
"""

from __future__ import annotations

import contextlib
import resource
import sys
from multiprocessing.connection import Connection
from pathlib import Path

from ragplatform.domain.errors import DocumentRejected, InvalidArgument
from ragplatform.domain.parsing import ParsedDocument, parse_document


def serve(fd: int) -> None:
    """A child's whole life: read its limits, apply them, then parse requests until the socket
    closes. The parsers are imported before the memory limit applies."""
    conn = Connection(fd)
    limits, memory_bytes = conn.recv()
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    # If the container runs out of memory before our limit does, the kernel must pick a parser
    # (the sandbox then reports the memory limit), never the worker. Raising one's own score
    # needs no privilege.
    with contextlib.suppress(OSError):
        Path("/proc/self/oom_score_adj").write_text("1000")
    conn.send("ready")
    while True:
        try:
            data, filename, content_type = conn.recv()
        except (EOFError, OSError):
            return
        except MemoryError:
            # The request itself does not fit: the sandbox sees this process end and reports the
            # memory limit. Quietly: a traceback here would land in the worker's JSON log.
            sys.exit(3)
        reply: tuple[str, str, ParsedDocument | None]
        try:
            reply = ("ok", "", parse_document(data, filename, content_type, limits))
        except DocumentRejected as exc:
            reply = ("rejected", exc.message, None)
        except InvalidArgument as exc:
            reply = ("invalid", exc.message, None)
        except MemoryError:
            reply = ("memory", "", None)
        except Exception as exc:
            reply = ("crash", f"{type(exc).__name__}: {exc}", None)
        del data
        try:
            conn.send(reply)
        except MemoryError:
            conn.send(("memory", "", None))


if __name__ == "__main__":
    serve(int(sys.argv[1]))
