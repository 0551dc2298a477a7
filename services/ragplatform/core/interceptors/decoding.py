"""Request decoding: bytes that do not decode as the method's request message end the call with
INVALID_ARGUMENT, like any other bad request, instead of grpc's UNKNOWN (unary) or a call
dropped without a status (a bad message inside a client stream).

grpc.aio runs the request deserializer itself, outside every interceptor's scope: when it raises,
a unary call ends UNKNOWN with a traceback in the log and no access-log line, and a streaming
call's request iterator raises inside whatever consumes it (for the gateway, grpc's own task
forwarding the upload upstream, which cancels the upstream call: the caller never gets a status).
So the deserializer here never raises: it returns an `UndecodableRequest`, which the call, inside
the other interceptors' scopes, turns into `InvalidArgument` (logged once, counted, no traceback).

A call that fails while its client is still streaming also reads (and drops) the rest of the
stream, bounded in bytes and time, before it ends: a status sent while the client is still
writing makes grpc's client fail its next write with INTERNAL "Internal error from Core" instead
of showing the server's status.

This interceptor must be the innermost one, so that its errors pass through the error mapping.
The health and reflection services, which the other interceptors leave alone, end such calls
INVALID_ARGUMENT themselves.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, NoReturn

import grpc

from ragplatform.core.interceptors.base import drain_requests, is_infrastructure
from ragplatform.domain.errors import InvalidArgument


class UndecodableRequest:
    """What the tolerant deserializer returns for bytes that are not a valid request message."""

    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        self.reason = reason


def tolerant_deserializer(deserializer: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    """Wrap a request deserializer so that it returns `UndecodableRequest` instead of raising."""
    if deserializer is None:
        return None
    message_class = getattr(deserializer, "__self__", None)
    descriptor = getattr(message_class, "DESCRIPTOR", None)
    type_name = getattr(descriptor, "full_name", "request")
    reason = (
        f"the request bytes are not a valid {type_name} message; send a serialized {type_name} "
        "(use the generated client stubs, or grpcurl with the server's reflection)"
    )

    def deserialize(data: bytes) -> Any:
        try:
            return deserializer(data)
        except Exception:  # protobuf raises DecodeError, but any failure means the same here
            return UndecodableRequest(reason)

    return deserialize


class CheckedRequests:
    """A client stream that raises `InvalidArgument` at an undecodable message and remembers it,
    so the call can end with that error whoever consumed the stream (and whatever they did with
    the exception). Safe to read from two tasks (the servicer's and a drain)."""

    def __init__(self, raw: Any) -> None:
        self._raw: AsyncIterator[Any] = aiter(raw)
        self._lock = asyncio.Lock()
        self.error: InvalidArgument | None = None
        self.finished = False

    def __aiter__(self) -> CheckedRequests:
        return self

    async def __anext__(self) -> Any:
        if self.error is not None:
            raise self.error
        async with self._lock:
            try:
                message = await anext(self._raw)
            except StopAsyncIteration:
                self.finished = True
                raise
        if isinstance(message, UndecodableRequest):
            self.error = InvalidArgument(message.reason)
            raise self.error
        return message

    async def drain(self) -> None:
        """Read and drop what is left of the stream (bounded: `base.drain_requests`)."""
        if self.finished:
            return
        async with self._lock:
            self.finished = await drain_requests(self._raw)


def _failed_quietly() -> bool:
    """Whether this task itself is being cancelled (then nothing may replace the cancellation)."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


async def _end_stream(requests: CheckedRequests, failure: BaseException) -> NoReturn:
    """Raise what a streamed-request call that failed with `failure` should end with."""
    if _failed_quietly() or isinstance(failure, GeneratorExit):
        raise failure
    if isinstance(failure, Exception | asyncio.CancelledError):
        # An undecodable message wins over what consuming it caused (e.g. a cancelled upstream
        # call: grpc cancels a call whose request iterator raised).
        ending: BaseException = requests.error if requests.error is not None else failure
        if isinstance(ending, Exception):
            with contextlib.suppress(TimeoutError, grpc.aio.AioRpcError, grpc.aio.AbortError, RuntimeError):
                await requests.drain()
        if ending is not failure:
            raise ending from None
    raise failure


def _aborting(call: Callable[..., Any], streams_response: bool) -> Callable[..., Any]:
    """For the health and reflection services, which no error-mapping scope wraps: end the call
    INVALID_ARGUMENT here (grpc would make the exception UNKNOWN)."""

    async def unary(request: Any, context: Any) -> Any:
        try:
            return await call(request, context)
        except InvalidArgument as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, exc.message)

    async def stream(request: Any, context: Any) -> AsyncIterator[Any]:
        try:
            async for item in call(request, context):
                yield item
        except InvalidArgument as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, exc.message)

    return stream if streams_response else unary


def _wrap(handler: grpc.RpcMethodHandler[Any, Any], abort_here: bool) -> grpc.RpcMethodHandler[Any, Any]:
    def check(request: Any) -> Any:
        if isinstance(request, UndecodableRequest):
            raise InvalidArgument(request.reason)
        return request

    def unary_unary(behaviour: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        async def call(request: Any, context: Any) -> Any:
            return await behaviour(check(request), context)

        return call

    def unary_stream(behaviour: Callable[..., AsyncIterator[Any]]) -> Callable[..., AsyncIterator[Any]]:
        async def call(request: Any, context: Any) -> AsyncIterator[Any]:
            async for item in behaviour(check(request), context):
                yield item

        return call

    def stream_unary(behaviour: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        async def call(request_iterator: Any, context: Any) -> Any:
            requests = CheckedRequests(request_iterator)
            try:
                return await behaviour(requests, context)
            except BaseException as failure:
                await _end_stream(requests, failure)

        return call

    def stream_stream(behaviour: Callable[..., AsyncIterator[Any]]) -> Callable[..., AsyncIterator[Any]]:
        async def call(request_iterator: Any, context: Any) -> AsyncIterator[Any]:
            requests = CheckedRequests(request_iterator)
            try:
                async for item in behaviour(requests, context):
                    yield item
            except BaseException as failure:
                await _end_stream(requests, failure)

        return call

    kwargs = {
        "request_deserializer": tolerant_deserializer(handler.request_deserializer),
        "response_serializer": handler.response_serializer,
    }

    def finish(call: Callable[..., Any], streams_response: bool) -> Callable[..., Any]:
        return _aborting(call, streams_response) if abort_here else call

    if handler.unary_unary:
        return grpc.unary_unary_rpc_method_handler(finish(unary_unary(handler.unary_unary), False), **kwargs)
    if handler.unary_stream:
        return grpc.unary_stream_rpc_method_handler(finish(unary_stream(handler.unary_stream), True), **kwargs)
    if handler.stream_unary:
        return grpc.stream_unary_rpc_method_handler(finish(stream_unary(handler.stream_unary), False), **kwargs)
    if handler.stream_stream:
        return grpc.stream_stream_rpc_method_handler(finish(stream_stream(handler.stream_stream), True), **kwargs)
    return handler


class RequestDecodingInterceptor(grpc.aio.ServerInterceptor):
    """Installs the tolerant deserializer and the checks above (the innermost interceptor).
    Wrapped handlers are cached per method: the wrapping holds no per-call state."""

    def __init__(self) -> None:
        self._handlers: dict[str, grpc.RpcMethodHandler[Any, Any]] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any]]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any]:
        method = handler_call_details.method
        cached = self._handlers.get(method)
        if cached is not None:
            return cached
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        wrapped = _wrap(handler, abort_here=is_infrastructure(method))
        self._handlers[method] = wrapped
        return wrapped
