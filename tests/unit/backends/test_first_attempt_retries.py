"""`with_retries`: the first attempt bare, then tenacity's bounded loop for transient failures."""

from __future__ import annotations

import pytest
from tenacity import wait_none

from ragplatform.backends.first_attempt_retries import with_retries


class Flaky:
    """Fails with the given errors in turn, then answers "ok"; counts its calls."""

    def __init__(self, *failures: Exception) -> None:
        self.failures = list(failures)
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)
        return "ok"


def transient(exc: BaseException) -> bool:
    return isinstance(exc, TimeoutError)


async def test_a_success_is_one_call() -> None:
    flaky = Flaky()
    assert await with_retries(flaky, attempts=3, wait=wait_none(), transient=transient) == "ok"
    assert flaky.calls == 1


async def test_transient_failures_are_retried_up_to_the_bound_in_all() -> None:
    flaky = Flaky(TimeoutError("1"), TimeoutError("2"))
    assert await with_retries(flaky, attempts=3, wait=wait_none(), transient=transient) == "ok"
    assert flaky.calls == 3
    failing = Flaky(TimeoutError("1"), TimeoutError("2"), TimeoutError("3"), TimeoutError("4"))
    with pytest.raises(TimeoutError, match="3"):
        await with_retries(failing, attempts=3, wait=wait_none(), transient=transient)
    assert failing.calls == 3


async def test_a_failure_that_is_not_transient_is_raised_at_once() -> None:
    flaky = Flaky(ValueError("bad request"))
    with pytest.raises(ValueError, match="bad request"):
        await with_retries(flaky, attempts=3, wait=wait_none(), transient=transient)
    assert flaky.calls == 1
    later = Flaky(TimeoutError("1"), ValueError("bad request"))
    with pytest.raises(ValueError, match="bad request"):
        await with_retries(later, attempts=3, wait=wait_none(), transient=transient)
    assert later.calls == 2
