import asyncio
import itertools
from collections.abc import AsyncIterator

import pytest

from ragplatform.backends.llms.base import AnswerDelta, AnswerDone, AnswerEvent
from ragplatform.domain.errors import Unavailable
from ragplatform.domain.models import TokenUsage
from ragplatform.generation.coalesce import coalesce_deltas

DONE = AnswerDone([], TokenUsage(1, 3), "m", "stop")


async def burst(texts: list[str], fail: bool = False) -> AsyncIterator[AnswerEvent]:
    for text in texts:
        yield AnswerDelta(text)
    if fail:
        raise Unavailable("the model went away")
    yield DONE


async def paced(texts: list[str], gap: float) -> AsyncIterator[AnswerEvent]:
    for text in texts:
        await asyncio.sleep(gap)
        yield AnswerDelta(text)
    yield DONE


async def collect(events: AsyncIterator[AnswerEvent], consumer_delay: float = 0.0) -> list[AnswerEvent]:
    out = []
    async for event in events:
        out.append(event)
        await asyncio.sleep(consumer_delay)
    return out


async def test_a_stream_that_keeps_up_is_forwarded_token_by_token() -> None:
    out = await collect(coalesce_deltas(paced(["a", "b", "c"], gap=0.02)))
    assert out == [AnswerDelta("a"), AnswerDelta("b"), AnswerDelta("c"), DONE]


async def test_deltas_that_piled_up_behind_a_slow_consumer_are_merged_in_order() -> None:
    texts = [f"t{i} " for i in range(50)]
    out = await collect(coalesce_deltas(burst(texts)), consumer_delay=0.01)
    deltas = [e for e in out if isinstance(e, AnswerDelta)]
    assert "".join(d.text for d in deltas) == "".join(texts)
    assert len(deltas) < len(texts)
    assert out[-1] == DONE


async def test_merged_messages_respect_the_size_cap() -> None:
    texts = ["x" * 30] * 20
    out = await collect(coalesce_deltas(burst(texts), max_chars=100), consumer_delay=0.01)
    deltas = [e for e in out if isinstance(e, AnswerDelta)]
    assert all(len(d.text) <= 100 for d in deltas)
    assert "".join(d.text for d in deltas) == "".join(texts)


async def test_an_error_arrives_after_everything_sent_before_it() -> None:
    seen: list[AnswerEvent] = []

    async def consume() -> None:
        async for event in coalesce_deltas(burst(["a", "b"], fail=True)):
            seen.append(event)

    with pytest.raises(Unavailable, match="went away"):
        await consume()
    assert "".join(e.text for e in seen if isinstance(e, AnswerDelta)) == "ab"


async def test_a_consumer_that_stops_early_stops_the_source() -> None:
    stopped = asyncio.Event()

    async def endless() -> AsyncIterator[AnswerEvent]:
        try:
            while True:
                await asyncio.sleep(0.001)
                yield AnswerDelta("x")
        finally:
            stopped.set()

    stream = coalesce_deltas(endless())
    assert isinstance(await anext(stream), AnswerDelta)
    await stream.aclose()
    await asyncio.wait_for(stopped.wait(), 1.0)


async def timed(events: AsyncIterator[AnswerEvent]) -> list[tuple[float, AnswerEvent]]:
    loop = asyncio.get_running_loop()
    began = loop.time()
    return [(loop.time() - began, event) async for event in events]


async def test_with_an_interval_the_first_token_goes_at_once_and_the_rest_together() -> None:
    texts = [f"t{i} " for i in range(20)]
    out = await timed(coalesce_deltas(paced(texts, gap=0.01), interval=0.08))
    deltas = [(at, e) for at, e in out if isinstance(e, AnswerDelta)]
    assert "".join(e.text for _, e in deltas) == "".join(texts)
    assert deltas[0][1] == AnswerDelta("t0 ")  # not held back for the interval
    assert 2 <= len(deltas) <= 6  # ~0.2 s of tokens, one message per 0.08 s at most (not 20)
    sent = [at for at, _ in deltas[:-1]]  # (the last goes with the answer's end, whenever that comes)
    assert all(later - earlier >= 0.07 for earlier, later in itertools.pairwise(sent))
    assert out[-1][1] == DONE


async def test_with_an_interval_the_end_is_not_held_back() -> None:
    """The answer's end sends the text held at once: the last tokens do not wait out the interval."""
    out = await timed(coalesce_deltas(paced(["a", "b", "c"], gap=0.01), interval=0.5))
    assert [e for _, e in out] == [AnswerDelta("a"), AnswerDelta("bc"), DONE]
    assert out[-1][0] < 0.3


async def test_with_an_interval_an_error_still_comes_after_the_text_before_it() -> None:
    seen: list[AnswerEvent] = []

    async def consume() -> None:
        async for event in coalesce_deltas(burst(["a", "b", "c"], fail=True), interval=0.5):
            seen.append(event)

    with pytest.raises(Unavailable, match="went away"):
        await consume()
    assert "".join(e.text for e in seen if isinstance(e, AnswerDelta)) == "abc"
