"""Logging, configured once per process: structlog, JSON lines by default.

Every line carries the request id and tenant of the call it belongs to (bound by the access-log
interceptor through structlog's contextvars). Every line, ours or a library's, passes through
`redact_event` last, so no URL credential reaches the log whoever wrote the line.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog

from ragplatform.core.redaction import redact_event
from ragplatform.core.tracing import add_trace_ids

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


def configure_logging(level: str = "info", fmt: str = "json", service: str = "", trace_ids: bool = False) -> None:
    """Render structlog's lines and the standard library's (libraries') with one JSON (or console)
    renderer, to standard error, every line through `redact_event` last.

    With `trace_ids` (tracing is on), every line written inside a span carries `trace_id` and
    `span_id`; without, that processor is not installed at all."""
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    if trace_ids:
        shared.append(add_trace_ids)
    renderer: Any = (
        structlog.processors.JSONRenderer() if fmt == "json" else structlog.dev.ConsoleRenderer(colors=False)
    )
    # Our own lines are rendered and written by structlog itself: through the standard library
    # (a LogRecord, its caller found by walking frames, copied again by the formatter) one line
    # cost ~40 us of CPU, and every gRPC call writes one (docs/performance.md).
    structlog.configure(
        processors=[
            *shared,
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            redact_event,
            renderer,
        ],
        logger_factory=structlog.WriteLoggerFactory(file=sys.stderr),
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS[level]),
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            # Library records carry a raw exc_info; format it so the traceback is redacted too.
            structlog.processors.format_exc_info,
            redact_event,
            renderer,
        ],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(_LEVELS[level])
    # HTTP clients (openai's httpx, botocore) log every request at INFO: one line per embedding
    # batch or streamed answer drowns the access log. Their warnings and errors still show.
    for noisy in ("httpx", "httpcore", "botocore", "aiobotocore", "urllib3"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, _LEVELS[level]))
    if service:
        structlog.contextvars.bind_contextvars(service=service)


def get_logger(name: str) -> Any:
    return structlog.get_logger(name)
