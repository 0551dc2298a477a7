"""Parse untrusted documents where a hostile one can cost only bounded time and memory.

`ParseSandbox.parse(data, filename, content_type)` is the one call the ingestion worker makes. It
runs `parse_document` in a small pool of persistent child processes, each limited in address
space (RLIMIT_AS) and given a wall-clock deadline per document: a child over its deadline is
killed and replaced, one that runs out of memory reports it (or dies) and is replaced. Either way
the document is rejected with a message that names the limit and the setting to raise; nothing
is retried, because the same file would fail the same way.

Why processes: pypdf and the Office libraries are pure Python under the GIL, so a thread can be
neither interrupted nor limited in memory; a 4 MB PDF once grew a worker by 4 GB and held it for
minutes. Why persistent: a round trip to a warm child costs well under a millisecond, a process
start tens of milliseconds (a second with the parsers' imports). Small plain-text and HTML files
skip the round trip: their parsers are linear in the input (HTML via libxml2, which refuses deep
nesting), so at a few kilobytes they are cheaper in-process than any IPC (up to 16 KB on the
event loop itself, without even a thread hop). Markdown is not: its parser is superlinear on
crafted input (64 KB of `[` took 25 s), so it always goes to a child. The rule: a format skips
the sandbox only if no crafted file can make its parser take superlinear time or memory.

Children are fresh interpreters (`python -m ragplatform.ingestion.parse_child FD`) talking over a
socket pair: the worker process runs gRPC threads and must never `fork()`.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import subprocess
import sys
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Final

import structlog

from ragplatform.domain.content_types import HTML, PLAIN_TEXT, detect_content_type
from ragplatform.domain.errors import DocumentRejected, InvalidArgument
from ragplatform.domain.parsers.limits import MIB
from ragplatform.domain.parsing import DEFAULT_LIMITS, ParsedDocument, ParseLimits, parse_document

log = structlog.get_logger("ragplatform.parse_sandbox")

# (data, filename, declared content type) -> the parsed document.
ParseDocument = Callable[[bytes, str, str], Awaitable[ParsedDocument]]

_START_SECONDS: Final = 60.0
_IN_PROCESS_TYPES: Final = frozenset((PLAIN_TEXT, HTML))
# In-process files up to this size parse on the event loop itself: a few kilobytes of a linear
# parser take less CPU than the hop to a thread and back (which was ~10 % of a worker's CPU per
# small document, the parse itself a fraction of that).
ON_LOOP_MAX_BYTES: Final = 16 * 1024


async def parse_in_process(data: bytes, filename: str, content_type: str) -> ParsedDocument:
    """No sandbox: for tests and tools that parse trusted files."""
    return await asyncio.to_thread(parse_document, data, filename, content_type)


@dataclass(frozen=True)
class SandboxPolicy:
    limits: ParseLimits = DEFAULT_LIMITS
    processes: int = 2
    timeout_seconds: float = 60.0
    memory_bytes: int = 1024 * MIB
    in_process_max_bytes: int = 64 * 1024


class _Child:
    """One child process and our end of its socket. Used by one caller at a time."""

    def __init__(self, policy: SandboxPolicy) -> None:
        ours, theirs = socket.socketpair()
        # A fresh interpreter, not a fork: the worker runs gRPC threads, and forking a process
        # with threads can deadlock the child.
        self.process = subprocess.Popen(
            [sys.executable, "-m", "ragplatform.ingestion.parse_child", str(theirs.fileno())],
            pass_fds=[theirs.fileno()],
            stdin=subprocess.DEVNULL,
        )
        theirs.close()
        self.conn = Connection(ours.detach())
        self.conn.send((policy.limits, policy.memory_bytes))
        # Ready once the parsers are imported and the limits applied: no document pays for that.
        if not self.conn.poll(_START_SECONDS) or self.conn.recv() != "ready":
            self.kill()
            raise RuntimeError(f"a parser process did not start within {_START_SECONDS:g} s")

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def call(self, request: tuple[bytes, str, str], timeout: float) -> tuple[str, str, ParsedDocument | None]:
        """Blocking round trip: (outcome, message, document). Outcomes: ok, rejected, invalid,
        memory, crash (from the child), timeout, died (seen here)."""
        try:
            self.conn.send(request)
            if not self.conn.poll(timeout):
                self.kill()
                return ("timeout", "", None)
            reply: tuple[str, str, ParsedDocument | None] = self.conn.recv()
            return reply
        except (EOFError, OSError):
            return ("died", f"exit code {self._wait(1.0)}", None)

    def kill(self) -> None:
        with contextlib.suppress(OSError):
            self.process.kill()
        self._wait(5.0)

    def close(self) -> None:
        self.conn.close()  # the child reads EOF and exits
        if self._wait(2.0) is None:
            self.kill()

    def _wait(self, seconds: float) -> int | None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            return self.process.wait(seconds)
        return None


class ParseSandbox:
    """Callers may rely on: `parse` returns the parsed document or raises `DocumentRejected`
    (with a message naming the limit and its setting) or `InvalidArgument` (unsupported type);
    at most `policy.processes` documents parse in children at once, further callers wait their
    turn in arrival order; a child that misbehaves never affects the next document."""

    def __init__(self, policy: SandboxPolicy) -> None:
        self._policy = policy
        self._idle: asyncio.Queue[_Child] = asyncio.Queue()
        self._children: list[_Child] = []
        # One thread per child waits on its round trip: a parse may hold its thread for the whole
        # deadline, which must never starve the loop's default executor (6 threads on 2 cores).
        self._threads = ThreadPoolExecutor(max_workers=policy.processes, thread_name_prefix="parse-sandbox")

    @property
    def policy(self) -> SandboxPolicy:
        return self._policy

    async def start(self) -> None:
        """Start the children (a second or so each, in parallel: each imports the parsers once)."""
        children = await asyncio.gather(
            *(asyncio.to_thread(_Child, self._policy) for _ in range(self._policy.processes))
        )
        for child in children:
            self._children.append(child)
            self._idle.put_nowait(child)

    async def close(self) -> None:
        for child in self._children:
            await asyncio.to_thread(child.close)
        self._children.clear()
        self._threads.shutdown(wait=False)

    async def parse(self, data: bytes, filename: str, content_type: str) -> ParsedDocument:
        policy = self._policy
        if (
            len(data) <= policy.in_process_max_bytes
            and detect_content_type(filename, content_type) in _IN_PROCESS_TYPES
        ):
            if len(data) <= ON_LOOP_MAX_BYTES:
                return parse_document(data, filename, content_type, policy.limits)
            return await asyncio.to_thread(parse_document, data, filename, content_type, policy.limits)
        child = await self._acquire()
        request = (data, filename, content_type)
        try:
            # The round trip blocks (send, wait, receive): a thread keeps it off the event loop.
            loop = asyncio.get_running_loop()
            outcome = await loop.run_in_executor(self._threads, child.call, request, policy.timeout_seconds)
        except asyncio.CancelledError:
            child.kill()  # the worker is stopping: do not leave a child busy with an abandoned file
            raise
        finally:
            self._idle.put_nowait(child)
        return self._result(outcome, filename)

    async def _acquire(self) -> _Child:
        child = await self._idle.get()
        if child.alive:
            return child
        # Killed (deadline, cancellation) or died (memory): a fresh one takes its place.
        if child in self._children:
            self._children.remove(child)
        try:
            fresh = await asyncio.to_thread(_Child, self._policy)
        except BaseException:
            self._idle.put_nowait(child)  # keep the slot; the next caller tries again
            raise
        self._children.append(fresh)
        return fresh

    def _result(self, outcome: tuple[str, str, ParsedDocument | None], filename: str) -> ParsedDocument:
        kind, message, document = outcome
        policy = self._policy
        if kind == "ok" and document is not None:
            return document
        if kind == "rejected":
            raise DocumentRejected(message)
        if kind == "invalid":
            raise InvalidArgument(message)
        if kind == "timeout":
            log.warning("parse deadline passed; child killed", filename=filename, seconds=policy.timeout_seconds)
            raise DocumentRejected(
                f"parsing {filename!r} took longer than {policy.timeout_seconds:g} s and was stopped; split it into "
                "smaller files, or raise RAG_PARSE_TIMEOUT_SECONDS."
            )
        if kind == "memory":
            log.warning("parse ran out of memory", filename=filename)
            raise DocumentRejected(
                f"parsing {filename!r} needed more than {policy.memory_bytes // MIB} MB of memory and was stopped; "
                "split it into smaller files, or raise RAG_PARSE_MEMORY_MB."
            )
        if kind == "died":
            log.warning("parser process died", filename=filename, detail=message)
            raise DocumentRejected(
                f"the parser process stopped while reading {filename!r} (most likely it needed more than "
                f"{policy.memory_bytes // MIB} MB of memory); split it into smaller files, or raise "
                "RAG_PARSE_MEMORY_MB."
            )
        log.error("parser crashed", filename=filename, error=message)
        raise DocumentRejected(
            f"{filename!r} could not be parsed ({message[:200]}); check that the file opens in its usual "
            "application, re-save it and upload again."
        )
