"""Requests to repair a RagPlatform, raised by events on its children, and their rate limit.

`RepairRequests` is the mailbox between the child watchers and each RagPlatform's repair loop
(a kopf daemon): a watcher files the reason under the owner's uid; the owner's loop wakes up,
takes every pending reason at once (a burst of events becomes one pass) and reconciles.

`RepairBackoff` spaces those passes per owner, as controller-runtime's per-item rate limiter
does: the first few passes run at once; while consecutive passes keep finding something to
repair (another controller fighting the operator over a field), the wait doubles up to a cap,
and a pass that finds nothing to repair resets it. One flapping child therefore slows only its
own platform's repairs; every other RagPlatform has its own loop and its own backoff.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field


@dataclass
class RepairMailbox:
    """The pending repair reasons of one RagPlatform."""

    wakeup: asyncio.Event = field(default_factory=asyncio.Event)
    reasons: list[str] = field(default_factory=list)

    def take(self) -> list[str]:
        """Every pending reason (oldest first), leaving the mailbox empty."""
        taken, self.reasons = self.reasons, []
        self.wakeup.clear()
        return taken


class RepairRequests:
    """Mailboxes by RagPlatform uid; only platforms whose repair loop runs have one."""

    def __init__(self) -> None:
        self._mailboxes: dict[str, RepairMailbox] = {}
        # Set by `close()` when the operator stops: every repair loop is woken to see it.
        self.closed = False

    def close(self) -> None:
        """Wake every repair loop, now and opened later, to see `closed` and return.

        kopf can spawn a RagPlatform's daemon again after it stopped the daemons on exit (an
        event already in a worker); that daemon would wait for a wakeup until kopf cancels it.
        """
        self.closed = True
        for box in self._mailboxes.values():
            box.wakeup.set()

    @contextmanager
    def mailbox(self, uid: str) -> Iterator[RepairMailbox]:
        """Open the mailbox of the RagPlatform `uid` for as long as its repair loop runs."""
        box = self._mailboxes[uid] = RepairMailbox()
        if self.closed:
            box.wakeup.set()
        try:
            yield box
        finally:
            if self._mailboxes.get(uid) is box:
                del self._mailboxes[uid]

    def request(self, uid: str, reason: str) -> bool:
        """File `reason` for the RagPlatform `uid`; False when no repair loop runs for it
        (not a platform this operator handles, or one being deleted)."""
        box = self._mailboxes.get(uid)
        if box is None:
            return False
        if reason not in box.reasons:
            box.reasons.append(reason)
        box.wakeup.set()
        return True


@dataclass
class RepairBackoff:
    """How long one RagPlatform's next child-triggered pass waits (times in seconds).

    `free_passes` passes in a row run at once; then the wait is `base * 2**k`, capped at
    `maximum`. A pass that repaired nothing, or `forget_after` seconds without a pass, resets it.
    """

    free_passes: int = 3
    base: float = 1.0
    maximum: float = 60.0
    forget_after: float = 120.0
    streak: int = 0
    last_pass: float | None = None

    def delay(self, now: float) -> float:
        """Seconds to wait from `now` before the next pass."""
        if self.last_pass is not None and now - self.last_pass > self.forget_after:
            self.streak = 0
        if self.streak < self.free_passes:
            return 0.0
        wait = min(self.maximum, self.base * 2.0 ** (self.streak - self.free_passes))
        elapsed = 0.0 if self.last_pass is None else now - self.last_pass
        return max(0.0, wait - elapsed)

    def passed(self, now: float, *, repaired: bool) -> None:
        """Record a pass that ended at `now`, and whether it had anything to repair."""
        self.streak = self.streak + 1 if repaired else 0
        self.last_pass = now
