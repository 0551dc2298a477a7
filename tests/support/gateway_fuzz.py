"""Fuzzing the gateway as a hostile client would: hypothesis strategies for calls to every
GatewayService method, and one function that makes a call and returns the status it ended with.

A case is one call: a well-formed request with odd values (every field drawn from its proto type:
extreme numbers, unknown enum values, long/empty/odd Unicode strings, random bytes, maps),
random bytes that are usually not a request at all, or an upload stream mixing both, sent with a
valid key, no key or a wrong one. What must hold for every case: the call ends with a status
before its deadline, and that status is never INTERNAL or UNKNOWN.

Used by `tests/e2e/test_gateway_fuzz.py` (a few hundred cases in CI) and `bench/fuzz_gateway.py`
(10k+ on demand, printing the count of every status).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf import descriptor as pb_descriptor
from google.protobuf import message_factory
from hypothesis import strategies as st

from ragplatform.v1 import gateway_pb2

SERVICE = gateway_pb2.DESCRIPTOR.services_by_name["GatewayService"]
METHODS = {method.name: method for method in SERVICE.methods}
# Statuses that mean the platform failed: a bug, or a call that never got an answer in time.
FORBIDDEN = frozenset({grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN, grpc.StatusCode.DEADLINE_EXCEEDED})
CALL_TIMEOUT_SECONDS = 20.0

_F = pb_descriptor.FieldDescriptor
ODD_STRINGS = [
    "",
    " ",
    "\x00",
    "\n\r\t",
    "a" * 5000,
    "../../etc/passwd",
    "' OR 1=1 --",
    "{{7*7}}${jndi:ldap://x}",
    "\u202etxt.exe",
    "\x1b[2J\x1b[31m",
    "🦜" * 300,
    "[" * 1000 + "]" * 1000,
    "W1tbW1tbW1s",
    "rag_" + "A" * 40,
    "00000000-0000-0000-0000-000000000000",
]
_INT_EXTREMES = {
    _F.TYPE_INT32: (-(2**31), 2**31 - 1),
    _F.TYPE_SINT32: (-(2**31), 2**31 - 1),
    _F.TYPE_SFIXED32: (-(2**31), 2**31 - 1),
    _F.TYPE_INT64: (-(2**63), 2**63 - 1),
    _F.TYPE_SINT64: (-(2**63), 2**63 - 1),
    _F.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    _F.TYPE_UINT32: (0, 2**32 - 1),
    _F.TYPE_FIXED32: (0, 2**32 - 1),
    _F.TYPE_UINT64: (0, 2**64 - 1),
    _F.TYPE_FIXED64: (0, 2**64 - 1),
}


def odd_text(max_size: int = 200) -> st.SearchStrategy[str]:
    return st.one_of(st.sampled_from(ODD_STRINGS), st.text(max_size=max_size))


def _integers(low: int, high: int) -> st.SearchStrategy[int]:
    return st.one_of(st.sampled_from([low, high, 0, -1 if low < 0 else 1]), st.integers(low, high))


def _scalar(field: pb_descriptor.FieldDescriptor) -> st.SearchStrategy[Any]:
    kind = field.type
    if kind == _F.TYPE_STRING:
        return odd_text()
    if kind == _F.TYPE_BYTES:
        return st.binary(max_size=4096)
    if kind == _F.TYPE_BOOL:
        return st.booleans()
    if kind == _F.TYPE_ENUM:  # proto3 enums are open: any int32 goes on the wire
        return _integers(-(2**31), 2**31 - 1)
    if kind in (_F.TYPE_FLOAT, _F.TYPE_DOUBLE):
        return st.floats(allow_nan=True, allow_infinity=True, width=32 if kind == _F.TYPE_FLOAT else 64)
    low, high = _INT_EXTREMES[kind]
    return _integers(low, high)


def messages(descriptor: pb_descriptor.Descriptor, depth: int = 0) -> st.SearchStrategy[Any]:
    """Instances of the message type with a random subset of its fields set to odd values."""
    cls = message_factory.GetMessageClass(descriptor)
    field_strategies: dict[str, st.SearchStrategy[Any]] = {}
    for field in descriptor.fields:
        entry = field.message_type
        if entry is not None and entry.GetOptions().map_entry:
            key_field, value_field = entry.fields_by_name["key"], entry.fields_by_name["value"]
            if value_field.type == _F.TYPE_MESSAGE:
                continue
            field_strategies[field.name] = st.dictionaries(_scalar(key_field), _scalar(value_field), max_size=40)
        elif entry is not None:
            if depth >= 3:
                continue
            inner = messages(entry, depth + 1)
            field_strategies[field.name] = st.lists(inner, max_size=3) if _repeated(field) else inner
        else:
            field_strategies[field.name] = st.lists(_scalar(field), max_size=5) if _repeated(field) else _scalar(field)

    @st.composite
    def build(draw: st.DrawFn) -> Any:
        message = cls()
        chosen = draw(st.sets(st.sampled_from(sorted(field_strategies)), max_size=len(field_strategies)))
        for name in sorted(chosen):
            value = draw(field_strategies[name])
            field = descriptor.fields_by_name[name]
            if field.message_type is not None and field.message_type.GetOptions().map_entry:
                getattr(message, name).update(value)
            elif _repeated(field):
                target = getattr(message, name)
                if field.type == _F.TYPE_MESSAGE:
                    for item in value:
                        target.add().CopyFrom(item)
                else:
                    target.extend(value)
            elif field.type == _F.TYPE_MESSAGE:
                getattr(message, name).CopyFrom(value)
            else:
                setattr(message, name, value)
        return message

    return build() if field_strategies else st.just(cls())


def _repeated(field: pb_descriptor.FieldDescriptor) -> bool:
    return bool(field.is_repeated)


@dataclass(frozen=True)
class Case:
    """One call: the method, what it sends (serialized messages or raw bytes), the credentials."""

    method: str
    payloads: tuple[bytes, ...]
    auth: str  # "valid", "none" or "wrong"
    kind: str  # "odd values", "raw bytes" or "mixed stream"


def _serialized(descriptor: pb_descriptor.Descriptor) -> st.SearchStrategy[bytes]:
    return messages(descriptor).map(lambda m: m.SerializeToString())


_AUTH = st.sampled_from(["valid"] * 8 + ["none", "wrong"])


@st.composite
def cases(draw: st.DrawFn) -> Case:
    """Any call to any GatewayService method."""
    name = draw(st.sampled_from(sorted(METHODS)))
    method = METHODS[name]
    auth = draw(_AUTH)
    raw = st.binary(min_size=1, max_size=512)
    if method.client_streaming:
        metadata_first = messages(method.input_type).map(lambda m: m.SerializeToString())
        well_formed = gateway_pb2.IngestRequest(metadata=gateway_pb2.IngestMetadata(filename="fuzz.txt"))
        first = st.one_of(st.just(well_formed.SerializeToString()), metadata_first, raw)
        rest = st.lists(st.one_of(_serialized(method.input_type), raw), max_size=6)
        payloads = (draw(first), *draw(rest))
        return Case(name, payloads, auth, "mixed stream")
    kind = draw(st.sampled_from(["odd values", "odd values", "raw bytes"]))
    payload = draw(_serialized(method.input_type) if kind == "odd values" else raw)
    return Case(name, (payload,), auth, kind)


def call(channel: grpc.Channel, case: Case, api_key: str) -> grpc.StatusCode:
    """Make the call; return the status it ended with (OK included)."""
    path = f"/{SERVICE.full_name}/{case.method}"
    metadata: list[tuple[str, str]] = []
    if case.auth == "valid":
        metadata.append(("authorization", f"Bearer {api_key}"))
    elif case.auth == "wrong":
        metadata.append(("authorization", "Bearer rag_not-a-real-key"))
    method = METHODS[case.method]
    try:
        if method.client_streaming:
            channel.stream_unary(path)(_each(case.payloads), metadata=metadata, timeout=CALL_TIMEOUT_SECONDS)
        elif method.server_streaming:
            for _ in channel.unary_stream(path)(case.payloads[0], metadata=metadata, timeout=CALL_TIMEOUT_SECONDS):
                pass
        else:
            channel.unary_unary(path)(case.payloads[0], metadata=metadata, timeout=CALL_TIMEOUT_SECONDS)
    except grpc.RpcError as exc:
        code: grpc.StatusCode = exc.code()  # type: ignore[attr-defined]
        return code
    return grpc.StatusCode.OK


def _each(payloads: tuple[bytes, ...]) -> Iterator[bytes]:
    yield from payloads


FUZZ_ENV = {
    # The fuzzer calls as fast as it can with one key: lift the per-key rate limit out of its way.
    "RAG_RATE_LIMIT_RPS": "1000000",
    "RAG_RATE_LIMIT_BURST": "1000000",
    "RAG_LOG_LEVEL": "warning",
}


@dataclass
class Outcome:
    """What a fuzz run saw: the count of every status, and the cases that broke the rules."""

    counts: dict[str, int]
    broken: list[tuple[Case, grpc.StatusCode]]

    def record(self, case: Case, code: grpc.StatusCode) -> None:
        self.counts[code.name] = self.counts.get(code.name, 0) + 1
        if code in FORBIDDEN:
            self.broken.append((case, code))


def fuzz(channel: grpc.Channel, api_key: str, examples: int, outcome: Outcome, stop_at_first: bool) -> None:
    """Run `examples` hypothesis-generated cases against the gateway behind `channel`."""
    from hypothesis import HealthCheck, Phase, given, settings

    phases = [Phase.generate, Phase.shrink] if stop_at_first else [Phase.generate]

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        phases=phases,
        suppress_health_check=list(HealthCheck),
    )
    @given(cases())
    def one(case: Case) -> None:
        code = call(channel, case, api_key)
        outcome.record(case, code)
        if stop_at_first:
            assert code not in FORBIDDEN, f"{case.kind} call to {case.method} ended {code.name}: {case}"

    one()
