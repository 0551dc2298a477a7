"""The production job queue: one Redis Stream per queue, read through a consumer group.

Keys (NAME = RAG_QUEUE_NAME, `ingestion` by default):
  ragplatform:queue:NAME           the stream; group `workers` (created at open, from the start)
  ragplatform:queue:NAME:dead      dead letters: job_id, tenant_id, deliveries, reason, message_id
  ragplatform:queue:NAME:delayed   released messages waiting out their delay (a sorted set
                                   scored by the Unix time in ms at which they become visible)
  ragplatform:queue:NAME:payload:JOB  a small document's bytes (base64), handed to the worker
                                   with its message; expire after PAYLOAD_TTL_SECONDS

Callers may rely on:
* At-least-once delivery. A received message sits in the group's pending list (PEL) until it is
  acked; once it has been idle longer than RAG_VISIBILITY_TIMEOUT_SECONDS another consumer
  takes it over with XAUTOCLAIM. Workers must therefore process idempotently (they do: point
  ids are deterministic and job state lives in the store).
* `delivery_count` counts every delivery of the job's message, across releases: it is the PEL's
  delivery counter plus the deliveries the entry carries from before a release.
* Acked, released and dead-lettered entries are deleted from the stream (XDEL), so the stream
  holds exactly the waiting and in-flight messages.
* `release(message, delay)` - ack + delete the entry and park the job in the delayed set, all in
  one Lua script; due jobs move back to the stream (at its end) atomically, checked at least once
  per poll interval (a quarter of the visibility timeout, at most 1 s) by each queue object.
  The sorted set was chosen over "re-add with a visible-after field" because a consumer would
  otherwise receive early messages only to put them back, and over XCLAIM's IDLE
  trick because that cannot express delays longer than the visibility timeout. A release by a
  consumer that no longer holds the message (it was reclaimed since) is ignored.
* One round trip per receive attempt (a Lua script that also does the periodic reclaim and
  promotion), for as many messages as asked (`receive_many`), and one per ack of any number of
  messages: fewer than raw XREADGROUP COUNT n + XACK.
* `extend(consumer, messages)` restarts the visibility timeout of the messages that consumer
  still holds (XCLAIM JUSTID to itself: the delivery counter does not move), so a job longer
  than the timeout is not taken over while its worker is alive.
* A message enqueued with a payload is received with it (the receive script reads the payload
  key of each message it returns, in the same round trip) until the payload expires
  (`PAYLOAD_TTL_SECONDS`) or the message is acked or dead-lettered; a replayed dead letter has
  none. Payloads live in keys of their own, not in the stream, so that scanning the stream
  (`job_ids_with_messages`) stays cheap, and so that a deep backlog holds at most the payloads
  of the last `PAYLOAD_TTL_SECONDS` of uploads in memory (older jobs read their blob).
* `depth()` = the group's `lag` + `pending` (XINFO GROUPS, what the operator autoscales on) +
  the delayed set's size.
* Redis failures raise `Unavailable`; the client reconnects by itself, and a group lost with a
  Redis restart without persistence is re-created on the next call.
Messages enqueued by a call that raised `Unavailable` may or may not exist (the reply was lost).
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractContextManager
from typing import Any, TypeVar

import redis.asyncio as redis
from redis.exceptions import ResponseError

from ragplatform.backends.queue.base import QueueMessage
from ragplatform.backends.redis_connection import COMMAND_TIMEOUT_SECONDS, connect_redis, redis_errors
from ragplatform.core.settings import QueueSettings
from ragplatform.domain.errors import Unavailable

T = TypeVar("T")

KEY_PREFIX = "ragplatform:queue:"
GROUP = "workers"
_SETTING = "RAG_QUEUE_URL"
# Longest a blocked XREADGROUP waits before receive() looks for reclaimable and due messages.
_MAX_POLL_SECONDS = 1.0
_PROMOTE_BATCH = 100
_SCAN_PAGE = 1000
# How long a message's payload is kept for its consumer: a job that waits longer reads its blob.
PAYLOAD_TTL_SECONDS = 300

# One round trip per receive attempt, for up to ARGV[7] messages. When ARGV[5] is 1
# ("maintenance", at most once per poll interval per consumer): move due delayed messages back to
# the stream, then take over messages idle past the visibility timeout (XAUTOCLAIM) and read
# each one's delivery counter. Then fill the rest with new messages, without blocking.
# Each message comes with its payload (base64, '' when it has none or it expired).
# Returns {reclaim cursor, id, flat fields, delivery counter, payload, id, fields, counter, payload, ...}.
_RECEIVE_LUA = """
local stream, group, consumer = KEYS[2], ARGV[1], ARGV[2]
local cursor = ARGV[4]
local wanted = tonumber(ARGV[7])
local payload_prefix = ARGV[8]
local out = {cursor}
local function add(id, fields, counter)
  local payload = false
  if type(fields) ~= 'table' then fields = {} end
  for i = 1, #fields, 2 do
    if fields[i] == 'job_id' then payload = redis.call('GET', payload_prefix .. fields[i + 1]) end
  end
  table.insert(out, id)
  table.insert(out, fields)
  table.insert(out, counter)
  table.insert(out, payload or '')
end
if ARGV[5] == '1' then
  local t = redis.call('TIME')
  local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now_ms, 'LIMIT', 0, tonumber(ARGV[6]))
  for _, m in ipairs(due) do
    local d = cjson.decode(m)
    local fields = {'job_id', d.job_id, 'tenant_id', d.tenant_id, 'deliveries', tostring(d.deliveries)}
    if type(d.traceparent) == 'string' then
      table.insert(fields, 'traceparent')
      table.insert(fields, d.traceparent)
    end
    redis.call('XADD', stream, '*', unpack(fields))
    redis.call('ZREM', KEYS[1], m)
  end
  -- XAUTOCLAIM looks at up to 10 x COUNT pending entries per call; a few calls cover a
  -- large pending list, and the cursor carries on from there next time.
  for _ = 1, 10 do
    local r = redis.call('XAUTOCLAIM', stream, group, consumer, ARGV[3], cursor, 'COUNT', wanted - (#out - 1) / 4)
    cursor = r[1]
    for _, entry in ipairs(r[2]) do
      local p = redis.call('XPENDING', stream, group, entry[1], entry[1], 1)
      add(entry[1], entry[2], p[1][4])
    end
    if cursor == '0-0' or (#out - 1) / 4 >= wanted then break end
  end
  out[1] = cursor
end
local missing = wanted - (#out - 1) / 4
if missing > 0 then
  local r = redis.call('XREADGROUP', 'GROUP', group, consumer, 'COUNT', missing, 'STREAMS', stream, '>')
  if r then
    for _, entry in ipairs(r[1][2]) do
      add(entry[1], entry[2], 1)
    end
  end
end
return out
"""

# Atomically: if the caller still holds the message (same total delivery count), ack and delete
# it and park it in the delayed set until now + delay.
_RELEASE_LUA = """
local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[2], ARGV[2], 1)
if #p == 0 then return 0 end
local e = redis.call('XRANGE', KEYS[1], ARGV[2], ARGV[2])
if #e == 0 then
  redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
  return 0
end
local f = {}
for i = 1, #e[1][2], 2 do f[e[1][2][i]] = e[1][2][i + 1] end
local total = tonumber(f['deliveries'] or '0') + tonumber(p[1][4])
if total ~= tonumber(ARGV[3]) then return 0 end
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local member = cjson.encode({job_id = f['job_id'], tenant_id = f['tenant_id'], deliveries = total, id = ARGV[2],
                             traceparent = f['traceparent']})
redis.call('ZADD', KEYS[2], now_ms + tonumber(ARGV[4]), member)
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[1], ARGV[2])
return 1
"""

# Atomically: acknowledge and delete the entries ARGV[2..], and the payload keys KEYS[2..] there
# are. One command for every message a worker finished meanwhile, where a MULTI/EXEC pipeline
# sent five per message.
_ACK_LUA = """
local ids = {unpack(ARGV, 2)}
redis.call('XACK', KEYS[1], ARGV[1], unpack(ids))
redis.call('XDEL', KEYS[1], unpack(ids))
if #KEYS > 1 then redis.call('DEL', unpack(KEYS, 2)) end
return 1
"""

# Restart the idle time (the visibility timeout) of the entries ARGV[3..] that consumer ARGV[2]
# still holds; XCLAIM ... JUSTID leaves their delivery counters alone. Returns the ids it kept.
_EXTEND_LUA = """
local kept = {}
for i = 3, #ARGV do
  local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1)
  if #p > 0 and p[1][2] == ARGV[2] then
    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i], 'JUSTID')
    table.insert(kept, ARGV[i])
  end
end
return kept
"""

# Atomically: move every dead letter back to the stream as a fresh message.
_REPLAY_LUA = """
local entries = redis.call('XRANGE', KEYS[1], '-', '+')
for _, e in ipairs(entries) do
  local f = {}
  for i = 1, #e[2], 2 do f[e[2][i]] = e[2][i + 1] end
  redis.call('XADD', KEYS[2], '*', 'job_id', f['job_id'], 'tenant_id', f['tenant_id'], 'deliveries', '0')
  redis.call('XDEL', KEYS[1], e[1])
end
return #entries
"""


def stream_key(queue_name: str) -> str:
    """The stream of a queue (the operator reads its depth from this key)."""
    return KEY_PREFIX + queue_name


def _fields(flat: Any) -> dict[str, str]:
    """Stream entry fields as a dict, whether redis-py gave a dict or Lua a flat list."""
    if isinstance(flat, dict):
        return {str(k): str(v) for k, v in flat.items()}
    items = list(flat)
    return {str(items[i]): str(items[i + 1]) for i in range(0, len(items), 2)}


class RedisStreamsQueue:
    """`JobQueue` on Redis Streams. Construct, then `await open()` (the factory does both)."""

    def __init__(self, settings: QueueSettings) -> None:
        self._url = settings.queue_url
        self.stream = stream_key(settings.queue_name)
        self.dead_stream = self.stream + ":dead"
        self.delayed_key = self.stream + ":delayed"
        self.payload_prefix = self.stream + ":payload:"
        self._visibility_ms = max(1, int(settings.visibility_timeout_seconds * 1000))
        # Poll often enough that a message whose visibility ran out is taken over promptly.
        self._poll_seconds = min(_MAX_POLL_SECONDS, max(0.05, settings.visibility_timeout_seconds / 4))
        self._redis: redis.Redis | None = None
        self._reclaim_cursor = "0-0"
        self._next_maintenance = 0.0

    # --- lifecycle -------------------------------------------------------------------------------
    async def open(self) -> None:
        """Create the client and the consumer group (if missing). Raise `Unavailable` when Redis
        cannot be reached."""
        if self._redis is not None:
            return
        client = connect_redis(self._url, socket_timeout=COMMAND_TIMEOUT_SECONDS + _MAX_POLL_SECONDS)
        self._redis = client
        self._receive_script = client.register_script(_RECEIVE_LUA)
        self._release_script = client.register_script(_RELEASE_LUA)
        self._ack_script = client.register_script(_ACK_LUA)
        self._extend_script = client.register_script(_EXTEND_LUA)
        self._replay_script = client.register_script(_REPLAY_LUA)
        try:
            with self._errors():
                await self._ensure_group()
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        client, self._redis = self._redis, None
        if client is not None:
            await client.aclose()

    def _client(self) -> redis.Redis:
        if self._redis is None:
            raise Unavailable("the Redis queue is not open (or was closed); restart the service")
        return self._redis

    def _errors(self) -> AbstractContextManager[None]:
        return redis_errors(self._url, "the ingestion queue", _SETTING)

    async def _ensure_group(self) -> None:
        try:
            # From id 0: messages added before the group existed are delivered too.
            await self._client().xgroup_create(self.stream, GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def _call(self, operation: Callable[[], Awaitable[T]]) -> T:
        """Run `operation`, re-creating the group once if Redis lost it (a restart without
        persistence), with Redis failures mapped to `Unavailable`."""
        with self._errors():
            try:
                return await operation()
            except ResponseError as exc:
                if "NOGROUP" not in str(exc):
                    raise
                await self._ensure_group()
                return await operation()

    # --- producing ---------------------------------------------------------------------------------
    async def enqueue(self, job_id: str, tenant_id: str, traceparent: str = "", payload: bytes = b"") -> str:
        fields = {"job_id": job_id, "tenant_id": tenant_id, "deliveries": "0"}
        if traceparent:
            fields["traceparent"] = traceparent

        async def add() -> str:
            if not payload:
                return str(await self._client().xadd(self.stream, fields))  # type: ignore[arg-type]
            # Payload first, in one transaction: a consumer never sees the message without it.
            async with self._client().pipeline(transaction=True) as pipe:
                pipe.set(self.payload_prefix + job_id, base64.b64encode(payload), ex=PAYLOAD_TTL_SECONDS)
                pipe.xadd(self.stream, fields)  # type: ignore[arg-type]
                _stored, message_id = await pipe.execute()
            return str(message_id)

        return await self._call(add)

    # --- consuming ---------------------------------------------------------------------------------
    async def receive(self, consumer: str, wait_seconds: float) -> QueueMessage | None:
        messages = await self.receive_many(consumer, 1, wait_seconds)
        return messages[0] if messages else None

    async def receive_many(self, consumer: str, max_messages: int, wait_seconds: float) -> list[QueueMessage]:
        """Due delayed messages first go back to the stream; then messages whose visibility
        timeout ran out are taken over; the rest are new ones, waiting up to `wait_seconds` for
        the first."""
        deadline = time.monotonic() + max(0.0, wait_seconds)
        wanted = max(1, max_messages)
        while True:
            messages = await self._call(lambda: self._receive_once(consumer, wanted, deadline))
            if messages or time.monotonic() >= deadline:
                return messages

    async def _receive_once(self, consumer: str, wanted: int, deadline: float) -> list[QueueMessage]:
        now = time.monotonic()
        maintain = now >= self._next_maintenance
        if maintain:
            self._next_maintenance = now + self._poll_seconds
        result = await self._receive_script(
            keys=[self.delayed_key, self.stream],
            args=[
                GROUP,
                consumer,
                self._visibility_ms,
                self._reclaim_cursor,
                "1" if maintain else "0",
                _PROMOTE_BATCH,
                wanted,
                self.payload_prefix,
            ],
        )
        self._reclaim_cursor = str(result[0])
        if len(result) > 1:
            return [
                _message(result[i], result[i + 1], int(result[i + 2]), result[i + 3]) for i in range(1, len(result), 4)
            ]
        # Nothing now: block for new messages until the next maintenance is due (a message whose
        # visibility timeout runs out, or a delayed one becoming due, wakes nobody up).
        wait = min(deadline, self._next_maintenance) - time.monotonic()
        block_ms = int(wait * 1000)
        if block_ms < 1:
            return []
        reply = await self._client().xreadgroup(GROUP, consumer, {self.stream: ">"}, count=wanted, block=block_ms)
        entries = [
            (message_id, _fields(fields)) for _stream, found in _stream_entries(reply) for message_id, fields in found
        ]
        if not entries:
            return []
        payloads = await self._client().mget([self.payload_prefix + fields["job_id"] for _id, fields in entries])
        return [
            _message(message_id, fields, 1, str(payload or ""))
            for (message_id, fields), payload in zip(entries, payloads, strict=True)
        ]

    async def ack(self, *messages: QueueMessage) -> None:
        """Acknowledge and delete the entries, whoever holds them now: their jobs are done."""
        if not messages:
            return
        keys = [self.stream, *(self.payload_prefix + m.job_id for m in messages if m.payload)]
        args = [GROUP, *(m.message_id for m in messages)]

        async def ack() -> None:
            await self._ack_script(keys=keys, args=args)

        await self._call(ack)

    async def extend(self, consumer: str, messages: Sequence[QueueMessage]) -> set[str]:
        """Restart the idle time of the entries `consumer` still holds, in one command."""
        if not messages:
            return set()

        async def extend() -> set[str]:
            kept = await self._extend_script(
                keys=[self.stream], args=[GROUP, consumer, *(m.message_id for m in messages)]
            )
            return {str(message_id) for message_id in kept}

        return await self._call(extend)

    async def release(self, message: QueueMessage, delay_seconds: float = 0.0) -> None:
        delay_ms = max(0, int(delay_seconds * 1000))

        async def release() -> None:
            await self._release_script(
                keys=[self.stream, self.delayed_key],
                args=[GROUP, message.message_id, message.delivery_count, delay_ms],
            )

        await self._call(release)

    async def dead_letter(self, message: QueueMessage, reason: str) -> None:
        async def bury() -> None:
            async with self._client().pipeline(transaction=True) as pipe:
                pipe.xadd(
                    self.dead_stream,
                    {
                        "job_id": message.job_id,
                        "tenant_id": message.tenant_id,
                        "deliveries": str(message.delivery_count),
                        "reason": reason,
                        "message_id": message.message_id,
                    },
                )
                pipe.xack(self.stream, GROUP, message.message_id)
                pipe.xdel(self.stream, message.message_id)
                pipe.delete(self.payload_prefix + message.job_id)
                await pipe.execute()

        await self._call(bury)

    # --- inspection and replay -------------------------------------------------------------------
    async def depth(self) -> int:
        """The group's lag + pending (XINFO GROUPS) + delayed messages."""

        async def measure() -> int:
            client = self._client()
            async with client.pipeline(transaction=False) as pipe:
                pipe.xinfo_groups(self.stream)
                pipe.xlen(self.stream)
                pipe.zcard(self.delayed_key)
                groups, length, delayed = await pipe.execute(raise_on_error=False)
            if isinstance(groups, ResponseError):
                # No stream (Redis restarted without persistence): nothing waits.
                await self._ensure_group()
                return int(delayed) if isinstance(delayed, int) else 0
            for group in groups:
                if group.get("name") == GROUP:
                    lag = group.get("lag")
                    # Lag is unknown (nil) after some deletions; since acked entries are deleted,
                    # the stream's length is then exactly waiting + pending.
                    waiting = int(lag) + int(group.get("pending", 0)) if lag is not None else int(length)
                    return waiting + int(delayed)
            await self._ensure_group()
            return int(length) + int(delayed)

        return await self._call(measure)

    async def job_ids_with_messages(self) -> set[str]:
        """Every entry of the stream (waiting and pending: acked ones are deleted) and of the
        delayed set, read in pages of `_SCAN_PAGE`."""

        async def scan() -> set[str]:
            client = self._client()
            found: set[str] = set()
            start = "-"
            while True:
                entries = await client.xrange(self.stream, start, "+", count=_SCAN_PAGE) or []
                found.update(_fields(fields)["job_id"] for _id, fields in entries)
                if len(entries) < _SCAN_PAGE:
                    break
                start = "(" + str(entries[-1][0])
            for member in await client.zrange(self.delayed_key, 0, -1):
                found.add(str(json.loads(str(member))["job_id"]))
            return found

        return await self._call(scan)

    async def dead_letters(self) -> list[tuple[QueueMessage, str]]:
        async def read() -> list[tuple[QueueMessage, str]]:
            entries = await self._client().xrange(self.dead_stream) or []
            letters = []
            for entry_id, raw in entries:
                data = _fields(raw)
                message = QueueMessage(
                    data.get("message_id", str(entry_id)),
                    data["job_id"],
                    data["tenant_id"],
                    int(data.get("deliveries", "0")),
                )
                letters.append((message, data.get("reason", "")))
            return letters

        return await self._call(read)

    async def replay_dead_letters(self) -> int:
        """Move every dead letter back to the stream as a new message (delivery count restarts)."""

        async def replay() -> int:
            return int(await self._replay_script(keys=[self.dead_stream, self.stream]))

        return await self._call(replay)


def _message(message_id: Any, fields: Any, counter: int, payload: str) -> QueueMessage:
    """A delivered entry; its delivery count is the PEL counter plus earlier deliveries, its
    payload the base64 text the receive script or MGET read ('' for none)."""
    data = _fields(fields)
    deliveries = int(data.get("deliveries", "0")) + counter
    return QueueMessage(
        str(message_id),
        data["job_id"],
        data["tenant_id"],
        deliveries,
        data.get("traceparent", ""),
        base64.b64decode(payload) if payload else b"",
    )


def _stream_entries(reply: Any) -> list[tuple[str, list[tuple[str, Any]]]]:
    """XREADGROUP's reply as [(stream, [(id, fields)])] for RESP2 (list) and RESP3 (dict)."""
    if not reply:
        return []
    if isinstance(reply, dict):
        return [(str(k), list(v[0] if v and isinstance(v[0], list) else v)) for k, v in reply.items()]
    return [(str(stream), list(entries)) for stream, entries in reply]
