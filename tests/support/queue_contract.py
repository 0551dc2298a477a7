"""The behaviour every `JobQueue` adapter must have, as tests any adapter's test module can reuse.

Usage: in the adapter's test module provide two fixtures and subclass `QueueContract`:

* `queue_settings` - `QueueSettings` naming an EMPTY queue (a fresh queue name or database per
  test) whose `visibility_timeout_seconds` is `CONTRACT_VISIBILITY_TIMEOUT`;
* `queue` - an opened queue built from those settings (`await open_queue(queue_settings)`).

    class TestRedisStreamsQueue(QueueContract):
        pass

The cross-process test starts this module as a script (`python -m tests.support.queue_contract`)
in two child processes, which open their own queue from the same settings through `open_queue`.
"""

from __future__ import annotations

import asyncio
import json
import sys
import uuid
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from ragplatform.backends.queue.base import JobQueue, QueueMessage
from ragplatform.backends.queue.factory import open_queue
from ragplatform.core.settings import QueueSettings, load_settings

CONTRACT_VISIBILITY_TIMEOUT = 0.5
# Generous upper bounds for "eventually": they only make a broken adapter fail instead of hang.
EVENTUALLY_SECONDS = 10.0
REPO_ROOT = Path(__file__).resolve().parents[2]


def new_job() -> str:
    return f"job-{uuid.uuid4().hex[:12]}"


class QueueContract:
    """Tests run against the `queue` and `queue_settings` fixtures of the subclassing module."""

    async def test_job_ids_with_messages_are_the_waiting_in_flight_and_delayed_ones(self, queue: JobQueue) -> None:
        waiting, in_flight, delayed, done = new_job(), new_job(), new_job(), new_job()
        for job in (in_flight, delayed, done):
            await queue.enqueue(job, "t")
        received = {}
        for _ in range(3):
            message = await queue.receive("worker-1", wait_seconds=EVENTUALLY_SECONDS)
            assert message is not None
            received[message.job_id] = message
        await queue.release(received[delayed], delay_seconds=60)
        await queue.ack(received[done])
        await queue.enqueue(waiting, "t")
        assert await queue.job_ids_with_messages() == {waiting, in_flight, delayed}

    async def test_a_message_is_delivered_with_its_job_and_tenant(self, queue: JobQueue) -> None:
        job = new_job()
        message_id = await queue.enqueue(job, "tenant-a")
        message = await queue.receive("worker-1", wait_seconds=EVENTUALLY_SECONDS)

        assert message is not None
        assert message.message_id == message_id
        assert message.job_id == job
        assert message.tenant_id == "tenant-a"
        assert message.delivery_count == 1

    async def test_the_trace_context_travels_with_the_message_across_a_delayed_retry(self, queue: JobQueue) -> None:
        traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        await queue.enqueue(new_job(), "t", traceparent)
        await queue.enqueue(new_job(), "t")
        first = await queue.receive("worker-1", wait_seconds=EVENTUALLY_SECONDS)
        assert first is not None
        assert first.traceparent == traceparent
        await queue.release(first, delay_seconds=0.05)
        plain = await queue.receive("worker-1", wait_seconds=EVENTUALLY_SECONDS)
        assert plain is not None
        assert plain.traceparent == ""
        again = await queue.receive("worker-1", wait_seconds=EVENTUALLY_SECONDS)
        assert again is not None
        assert (again.job_id, again.traceparent, again.delivery_count) == (first.job_id, traceparent, 2)

    async def test_receive_on_an_empty_queue_returns_none(self, queue: JobQueue) -> None:
        assert await queue.receive("worker-1", wait_seconds=0.2) is None

    async def test_messages_come_out_in_the_order_they_went_in(self, queue: JobQueue) -> None:
        jobs = [new_job() for _ in range(3)]
        for job in jobs:
            await queue.enqueue(job, "t")
        received = [await queue.receive("worker-1", wait_seconds=EVENTUALLY_SECONDS) for _ in jobs]
        assert [m.job_id if m else None for m in received] == jobs

    async def test_receive_many_takes_up_to_the_count_in_order_and_hides_them(self, queue: JobQueue) -> None:
        jobs = [new_job() for _ in range(5)]
        for job in jobs:
            await queue.enqueue(job, "t")
        first = await queue.receive_many("worker-1", 3, wait_seconds=EVENTUALLY_SECONDS)
        rest = await queue.receive_many("worker-2", 10, wait_seconds=EVENTUALLY_SECONDS)

        assert [m.job_id for m in first] == jobs[:3]
        assert [m.job_id for m in rest] == jobs[3:]
        assert all(m.delivery_count == 1 for m in first + rest)
        assert await queue.receive_many("worker-3", 10, wait_seconds=0) == []

    async def test_receive_many_reclaims_expired_messages_with_their_counts(self, queue: JobQueue) -> None:
        jobs = [new_job() for _ in range(3)]
        for job in jobs:
            await queue.enqueue(job, "t")
        taken = await queue.receive_many("worker-1", 3, wait_seconds=EVENTUALLY_SECONDS)
        assert len(taken) == 3
        # worker-1 "dies" holding all three; after the visibility timeout one call takes them all.
        again: list[QueueMessage] = []
        for _ in range(50):
            again += await queue.receive_many("worker-2", 3 - len(again), wait_seconds=EVENTUALLY_SECONDS)
            if len(again) == 3:
                break
        assert sorted(m.job_id for m in again) == sorted(jobs)
        assert [m.delivery_count for m in again] == [2, 2, 2]

    async def test_receive_waits_for_a_message_enqueued_meanwhile(self, queue: JobQueue) -> None:
        job = new_job()

        async def enqueue_later() -> None:
            await asyncio.sleep(0.3)
            await queue.enqueue(job, "t")

        producer = asyncio.create_task(enqueue_later())
        message = await queue.receive("worker-1", wait_seconds=EVENTUALLY_SECONDS)
        await producer
        assert message is not None
        assert message.job_id == job

    async def test_a_received_message_is_hidden_from_other_consumers(self, queue: JobQueue) -> None:
        await queue.enqueue(new_job(), "t")
        assert await queue.receive("worker-1", wait_seconds=EVENTUALLY_SECONDS) is not None
        assert await queue.receive("worker-2", wait_seconds=0) is None

    async def test_an_unacked_message_is_redelivered_with_a_growing_count(self, queue: JobQueue) -> None:
        job = new_job()
        await queue.enqueue(job, "t")
        first = await queue.receive("worker-1", wait_seconds=EVENTUALLY_SECONDS)
        # worker-1 "dies": after the visibility timeout someone else receives the message.
        second = await queue.receive("worker-2", wait_seconds=EVENTUALLY_SECONDS)
        third = await queue.receive("worker-3", wait_seconds=EVENTUALLY_SECONDS)

        assert first is not None
        assert second is not None
        assert third is not None
        assert {first.job_id, second.job_id, third.job_id} == {job}
        assert second.message_id == first.message_id
        assert [first.delivery_count, second.delivery_count, third.delivery_count] == [1, 2, 3]

    async def test_an_acked_message_is_never_delivered_again(self, queue: JobQueue) -> None:
        await queue.enqueue(new_job(), "t")
        message = await queue.receive("worker-1", wait_seconds=EVENTUALLY_SECONDS)
        assert message is not None
        await queue.ack(message)

        assert await queue.depth() == 0
        # Longer than the visibility timeout: a message that was only hidden would reappear.
        assert await queue.receive("worker-2", wait_seconds=CONTRACT_VISIBILITY_TIMEOUT * 3) is None

    async def test_one_ack_takes_several_messages_out_for_good(self, queue: JobQueue) -> None:
        jobs = [new_job() for _ in range(4)]
        for job in jobs:
            await queue.enqueue(job, "t", payload=b"small document" if job == jobs[0] else b"")
        taken = await queue.receive_many("worker-1", 4, wait_seconds=EVENTUALLY_SECONDS)
        assert len(taken) == 4
        await queue.ack(*taken[:3])
        await queue.ack()  # nothing: a no-op

        assert await queue.depth() == 1
        assert await queue.job_ids_with_messages() == {jobs[3]}
        # Past the visibility timeout only the unacked one comes back.
        again = await queue.receive_many("worker-2", 4, wait_seconds=EVENTUALLY_SECONDS)
        assert [m.job_id for m in again] == [jobs[3]]

    async def test_an_extended_message_stays_hidden_past_the_visibility_timeout(self, queue: JobQueue) -> None:
        kept, left = new_job(), new_job()
        await queue.enqueue(kept, "t")
        await queue.enqueue(left, "t")
        held = await queue.receive_many("worker-1", 2, wait_seconds=EVENTUALLY_SECONDS)
        assert [m.job_id for m in held] == [kept, left]

        # worker-1 beats for `kept` only, every third of the timeout, for twice the timeout.
        taken: list[QueueMessage] = []
        for _ in range(6):
            assert await queue.extend("worker-1", held[:1]) == {held[0].message_id}
            taken += await queue.receive_many("worker-2", 2, wait_seconds=CONTRACT_VISIBILITY_TIMEOUT / 3)
        # `left` timed out (worker-2 may even have had it twice by now); `kept` never came back.
        assert {m.job_id for m in taken} == {left}
        assert (taken[0].job_id, taken[0].delivery_count) == (left, 2)

        # A consumer that does not hold a message cannot extend it: worker-2 holds `left` now.
        assert await queue.extend("worker-1", held) == {held[0].message_id}
        assert await queue.extend("worker-3", held) == set()
        await queue.ack(held[0])
        assert await queue.extend("worker-1", held[:1]) == set()  # acked: nothing to extend
        # Once the beats stop, the visibility timeout applies again.
        assert [m.job_id for m in await queue.receive_many("worker-3", 2, wait_seconds=EVENTUALLY_SECONDS)] == [left]

    async def test_a_released_message_is_delivered_again_at_once(self, queue: JobQueue) -> None:
        job = new_job()
        await queue.enqueue(job, "t")
        message = await queue.receive("worker-1", wait_seconds=EVENTUALLY_SECONDS)
        assert message is not None
        await queue.release(message)

        again = await queue.receive("worker-2", wait_seconds=EVENTUALLY_SECONDS)
        assert again is not None
        assert again.job_id == job
        assert again.delivery_count == 2

    async def test_a_message_released_with_a_delay_waits_that_long(self, queue: JobQueue) -> None:
        job = new_job()
        await queue.enqueue(job, "t")
        message = await queue.receive("worker-1", wait_seconds=EVENTUALLY_SECONDS)
        assert message is not None
        # Far longer than the visibility timeout, so an early delivery cannot be a redelivery.
        await queue.release(message, delay_seconds=2.0)

        assert await queue.receive("worker-2", wait_seconds=CONTRACT_VISIBILITY_TIMEOUT * 2) is None
        assert await queue.depth() == 1
        later = await queue.receive("worker-2", wait_seconds=EVENTUALLY_SECONDS)
        assert later is not None
        assert later.job_id == job

    async def test_depth_counts_waiting_and_in_flight_messages(self, queue: JobQueue) -> None:
        assert await queue.depth() == 0
        for _ in range(3):
            await queue.enqueue(new_job(), "t")
        assert await queue.depth() == 3
        message = await queue.receive("worker-1", wait_seconds=EVENTUALLY_SECONDS)
        assert message is not None
        assert await queue.depth() == 3
        await queue.ack(message)
        assert await queue.depth() == 2

    async def test_dead_letters_are_kept_with_their_reason_and_can_be_replayed(self, queue: JobQueue) -> None:
        job = new_job()
        await queue.enqueue(job, "tenant-a")
        message = await queue.receive("worker-1", wait_seconds=EVENTUALLY_SECONDS)
        assert message is not None
        await queue.dead_letter(message, "failed 3 times: parser crashed")

        assert await queue.depth() == 0
        letters = await queue.dead_letters()
        assert [(m.job_id, m.tenant_id, reason) for m, reason in letters] == [
            (job, "tenant-a", "failed 3 times: parser crashed")
        ]
        assert await queue.receive("worker-2", wait_seconds=CONTRACT_VISIBILITY_TIMEOUT * 3) is None

        assert await queue.replay_dead_letters() == 1
        assert await queue.dead_letters() == []
        assert await queue.depth() == 1
        replayed = await queue.receive("worker-2", wait_seconds=EVENTUALLY_SECONDS)
        assert replayed is not None
        assert replayed.job_id == job
        assert replayed.tenant_id == "tenant-a"
        assert replayed.delivery_count == 1
        assert await queue.replay_dead_letters() == 0

    async def test_two_consumer_processes_never_receive_the_same_message(
        self, queue: JobQueue, queue_settings: QueueSettings
    ) -> None:
        jobs = [new_job() for _ in range(40)]
        consumers = [await _start_consumer(queue_settings, f"proc-{i}") for i in range(2)]
        try:
            for consumer in consumers:
                await asyncio.wait_for(_wait_until_ready(consumer), 60)
            for job in jobs:
                await queue.enqueue(job, "t")
            for consumer in consumers:
                assert consumer.stdin is not None
                consumer.stdin.write(b"go\n")
                await consumer.stdin.drain()
            outputs = [await asyncio.wait_for(c.communicate(), 90) for c in consumers]
        finally:
            for consumer in consumers:
                if consumer.returncode is None:
                    consumer.kill()
                    await consumer.wait()
        received: list[str] = []
        for consumer, (stdout, stderr) in zip(consumers, outputs, strict=True):
            assert consumer.returncode == 0, stderr.decode()
            received += [
                json.loads(line.removeprefix(_RECEIVED))["job_id"]
                for line in stdout.decode().splitlines()
                if line.startswith(_RECEIVED)
            ]
        # Exactly once each: a message claimed by both processes would appear twice.
        assert sorted(received) == sorted(jobs)
        assert await queue.depth() == 0


# Children mark their lines: anything else on their stdout (log lines) is not part of the protocol.
_READY = "READY"
_RECEIVED = "RECEIVED "


async def _wait_until_ready(consumer: asyncio.subprocess.Process) -> None:
    assert consumer.stdout is not None
    while True:
        line = await consumer.stdout.readline()
        if not line:
            raise AssertionError(f"consumer process exited before it was ready (exit code {await consumer.wait()})")
        if line.decode().strip() == _READY:
            return


async def _start_consumer(settings: QueueSettings, name: str) -> asyncio.subprocess.Process:
    # A long visibility timeout: a slow child must not make a legitimate redelivery look like
    # a double claim.
    fields: dict[str, Any] = {}
    for field in QueueSettings.model_fields:
        value = getattr(settings, field)
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        fields[field] = str(value) if isinstance(value, Path) else value
    fields["visibility_timeout_seconds"] = 120.0
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.support.queue_contract",
        json.dumps(fields),
        name,
        cwd=REPO_ROOT,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def _consume(settings: QueueSettings, name: str) -> None:
    """Child process: report ready, wait for "go", then take messages until none come."""
    queue = await open_queue(settings)
    try:
        print(_READY, flush=True)
        await asyncio.to_thread(sys.stdin.readline)
        while (message := await queue.receive(name, wait_seconds=1.0)) is not None:
            print(_RECEIVED + json.dumps({"job_id": message.job_id, "count": message.delivery_count}), flush=True)
            await asyncio.sleep(0.005)  # hold it a moment, as a worker would
            await queue.ack(message)
    finally:
        await queue.close()


if __name__ == "__main__":
    asyncio.run(_consume(load_settings(QueueSettings, **json.loads(sys.argv[1])), sys.argv[2]))
