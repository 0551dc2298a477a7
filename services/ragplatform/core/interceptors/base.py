"""`ScopedInterceptor`: turn an async context manager around a call into a gRPC interceptor;
`ScopeChain`: several of them as one interceptor (see `fuse_scopes`)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from typing import Any

import grpc

# Methods of the infrastructure services: no auth, no access log noise.
INFRASTRUCTURE_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.")


def is_infrastructure(method: str) -> bool:
    return method.startswith(INFRASTRUCTURE_PREFIXES)


class ScopedInterceptor(grpc.aio.ServerInterceptor):
    """Subclasses implement `scope(method, context)`; the call runs inside it."""

    skip_infrastructure = True

    def scope(self, method: str, context: grpc.aio.ServicerContext[Any, Any]) -> AbstractAsyncContextManager[None]:
        raise NotImplementedError

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any]]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any]:
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or (self.skip_infrastructure and is_infrastructure(method)):
            return handler
        return _wrap(handler, method, self.scope)


Scope = Callable[[str, Any], AbstractAsyncContextManager[None]]


class ScopeChain(grpc.aio.ServerInterceptor):
    """Several `ScopedInterceptor`s as one: a call's scopes are entered in order (the first is the
    outermost), exactly as if each were its own interceptor, but the call is wrapped once. Each
    interceptor of its own would rebuild the handler per call and add one async-generator layer
    that every streamed message passes through: for an Ask, a large share of the CPU it costs."""

    def __init__(self, parts: Sequence[ScopedInterceptor]) -> None:
        self.parts = tuple(parts)
        self._scopes = tuple(part.scope for part in self.parts)

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any]]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any]:
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or is_infrastructure(method):
            return handler
        return _wrap_chain(handler, method, self._scopes)


def fuse_scopes(chain: Sequence[grpc.aio.ServerInterceptor[Any, Any]]) -> list[grpc.aio.ServerInterceptor[Any, Any]]:
    """The same chain, with each run of adjacent `ScopedInterceptor`s (that skip the health and
    reflection services) fused into one `ScopeChain`; other interceptors keep their place."""
    fused: list[grpc.aio.ServerInterceptor[Any, Any]] = []
    run: list[ScopedInterceptor] = []
    for interceptor in chain:
        if isinstance(interceptor, ScopedInterceptor) and interceptor.skip_infrastructure:
            run.append(interceptor)
            continue
        if run:
            fused.append(ScopeChain(run) if len(run) > 1 else run[0])
            run = []
        fused.append(interceptor)
    if run:
        fused.append(ScopeChain(run) if len(run) > 1 else run[0])
    return fused


UnaryBehaviour = Callable[..., Awaitable[Any]]
StreamBehaviour = Callable[..., AsyncIterator[Any]]


def rewrap_handler(
    handler: grpc.RpcMethodHandler[Any, Any],
    unary_response: Callable[[UnaryBehaviour], UnaryBehaviour],
    stream_response: Callable[[StreamBehaviour], StreamBehaviour],
) -> grpc.RpcMethodHandler[Any, Any]:
    """The same handler with its behaviour wrapped: `unary_response` for methods that answer
    once, `stream_response` for methods that stream their answer."""
    kwargs = {
        "request_deserializer": handler.request_deserializer,
        "response_serializer": handler.response_serializer,
    }
    if handler.unary_unary:
        return grpc.unary_unary_rpc_method_handler(unary_response(handler.unary_unary), **kwargs)
    if handler.stream_unary:
        return grpc.stream_unary_rpc_method_handler(unary_response(handler.stream_unary), **kwargs)
    if handler.unary_stream:
        return grpc.unary_stream_rpc_method_handler(stream_response(handler.unary_stream), **kwargs)
    if handler.stream_stream:
        return grpc.stream_stream_rpc_method_handler(stream_response(handler.stream_stream), **kwargs)
    return handler


def _wrap(
    handler: grpc.RpcMethodHandler[Any, Any],
    method: str,
    scope: Callable[[str, Any], AbstractAsyncContextManager[None]],
) -> grpc.RpcMethodHandler[Any, Any]:
    def unary_response(behaviour: UnaryBehaviour) -> UnaryBehaviour:
        async def call(request: Any, context: Any) -> Any:
            async with scope(method, context):
                return await behaviour(request, context)

        return call

    def stream_response(behaviour: StreamBehaviour) -> StreamBehaviour:
        async def call(request: Any, context: Any) -> AsyncIterator[Any]:
            async with scope(method, context):
                async for item in behaviour(request, context):
                    yield item

        return call

    return rewrap_handler(handler, unary_response, stream_response)


def _wrap_chain(
    handler: grpc.RpcMethodHandler[Any, Any], method: str, scopes: Sequence[Scope]
) -> grpc.RpcMethodHandler[Any, Any]:
    def unary_response(behaviour: UnaryBehaviour) -> UnaryBehaviour:
        async def call(request: Any, context: Any) -> Any:
            async with AsyncExitStack() as stack:
                for scope in scopes:
                    await stack.enter_async_context(scope(method, context))
                return await behaviour(request, context)

        return call

    def stream_response(behaviour: StreamBehaviour) -> StreamBehaviour:
        async def call(request: Any, context: Any) -> AsyncIterator[Any]:
            async with AsyncExitStack() as stack:
                for scope in scopes:
                    await stack.enter_async_context(scope(method, context))
                async for item in behaviour(request, context):
                    yield item

        return call

    return rewrap_handler(handler, unary_response, stream_response)


def metadata_value(context: grpc.aio.ServicerContext[Any, Any], key: str) -> str:
    """The first value of an invocation metadata key, or ''."""
    for item in context.invocation_metadata() or ():
        if item[0] == key:
            value = item[1]
            return value.decode() if isinstance(value, bytes) else str(value)
    return ""
