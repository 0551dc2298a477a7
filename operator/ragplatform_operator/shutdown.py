"""A quiet, clean stop: what kopf 1.45 on Python 3.11 logs at exit that is not an error.

When the operator stops, kopf cancels its watcher tasks. A watcher cancelled while it handles an
event (not while it awaits the stream) leaves its watch-stream async generators open: kopf's
`infinite_watch`, and inside it the generator behind its `streaming_block` context manager.
`asyncio.run` then closes every open async generator at once (`loop.shutdown_asyncgens`), in no
set order. When the inner one is closed first, the outer one's `async with` exit throws into a
closed generator, which on Python 3.11 returns instead of raising, and contextlib reports
`RuntimeError: generator didn't stop after athrow()` with a traceback, once per watched kind.
Nothing is lost: both generators are closed and the operator has stopped.

`is_watch_stream_closing_noise` recognises exactly that report (the asyncgen closing message,
that RuntimeError, and a generator from kopf's watching module); `quiet_watch_stream_closing`
logs it as one debug line and passes every other loop error to the handler in place before.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

logger = logging.getLogger(__name__)

_CLOSING_MESSAGE = "an error occurred during closing of asynchronous generator"
_ATHROW_ERROR = "generator didn't stop after athrow()"
_KOPF_WATCHING = "kopf/_cogs/clients/watching.py"


def is_watch_stream_closing_noise(context: Mapping[str, Any]) -> bool:
    """True only for the loop's report that closing one of kopf's watch streams at exit hit the
    Python 3.11 athrow quirk (see the module docstring); False for anything else."""
    error = context.get("exception")
    if not isinstance(error, RuntimeError) or str(error) != _ATHROW_ERROR:
        return False
    if not str(context.get("message", "")).startswith(_CLOSING_MESSAGE):
        return False
    code = getattr(context.get("asyncgen"), "ag_code", None)
    return str(getattr(code, "co_filename", "")).replace("\\", "/").endswith(_KOPF_WATCHING)


def quiet_watch_stream_closing(loop: asyncio.AbstractEventLoop) -> None:
    """Install on `loop` a handler that turns that report into a debug line, nothing else."""
    previous = loop.get_exception_handler()

    def handle(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if is_watch_stream_closing_noise(context):
            logger.debug(f"closed a watch stream at exit ({context.get('asyncgen')!r})")
        elif previous is not None:
            previous(loop, context)
        else:
            loop.default_exception_handler(context)

    loop.set_exception_handler(handle)
