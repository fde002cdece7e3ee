"""Requests whose bytes do not parse get INVALID_ARGUMENT and a plain message, on every method.

Left to grpc.aio, they get UNKNOWN and a message naming the parser's exception class
("Unexpected <class 'google.protobuf.message.DecodeError'>: ..."). The interceptor gives each handler
the raw bytes and parses them itself.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from google.protobuf.message import DecodeError

from service.rpc.auth import Handler
from service.rpc.request_id import begin
from service.telemetry.metrics import GRPC, Metrics

Context = grpc.aio.ServicerContext[Any, Any]
Behavior = Callable[..., Any]  # a handler's function: async here, whatever the stubs say
KINDS = ("unary_unary", "stream_unary", "unary_stream", "stream_stream")


class DecodingInterceptor(grpc.aio.ServerInterceptor):
    """Parses each request message in the handler, where a malformed one can be answered INVALID_ARGUMENT."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler | None:
        handler = await continuation(handler_call_details)
        if handler is None or handler.request_deserializer is None:
            return handler
        parsing = _Parsing(handler.request_deserializer, handler_call_details.method, self._metrics)
        return parsing.wrap(handler)


class _Malformed(Exception):
    """A request message did not parse; raised where the message is read, answered by the handler's own task."""


class _Parsing:
    """Parses the request messages of one call to `method`."""

    def __init__(self, parse: Callable[[bytes], Any], method: str, metrics: Metrics) -> None:
        self._parse = parse
        self._method = method
        self._metrics = metrics

    async def one(self, data: bytes) -> Any:
        try:
            return self._parse(data)
        except DecodeError:
            raise _Malformed from None

    async def many(self, data: AsyncIterable[bytes]) -> AsyncIterator[Any]:
        async for message in data:
            yield await self.one(message)

    async def stream(self, data: AsyncIterable[bytes]) -> AsyncIterator[Any]:
        return self.many(data)

    async def refuse(self, context: Context) -> None:
        name = self._method.rsplit("/", 1)[-1]
        self._metrics.requests.labels(name, "", grpc.StatusCode.INVALID_ARGUMENT.name, GRPC).inc()
        message = f"the request is not a valid protobuf message for {self._method}"
        begin(context)
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, message)

    def wrap(self, handler: Handler) -> Handler:
        """A handler like `handler` that takes raw bytes."""
        kind, behavior = next((k, b) for k in KINDS if (b := getattr(handler, k)) is not None)
        wrapped: Behavior
        if kind == "unary_unary":

            async def wrapped(data: bytes, context: Context) -> Any:
                try:
                    return await behavior(await self.one(data), context)
                except _Malformed:
                    await self.refuse(context)

        elif kind == "stream_unary":

            async def wrapped(data: AsyncIterable[bytes], context: Context) -> Any:
                try:
                    return await behavior(self.many(data), context)
                except _Malformed:
                    await self.refuse(context)

        else:
            wrapped = self._streaming(behavior, self.one if kind == "unary_stream" else self.stream)
        make = getattr(grpc, f"{kind}_rpc_method_handler")
        new: Handler = make(wrapped, response_serializer=handler.response_serializer)
        return new

    def _streaming(self, behavior: Behavior, parse: Callable[[Any], Awaitable[Any]]) -> Behavior:
        """`behavior` (streaming its responses) on parsed requests, and of its kind: grpc.aio tells a coroutine
        function, which writes its responses with context.write, from an async generator function."""
        if inspect.iscoroutinefunction(behavior):

            async def writing(data: Any, context: Context) -> None:
                try:
                    await behavior(await parse(data), context)
                except _Malformed:
                    await self.refuse(context)

            return writing

        async def yielding(data: Any, context: Context) -> AsyncIterator[Any]:
            try:
                async for response in behavior(await parse(data), context):
                    yield response
            except _Malformed:
                await self.refuse(context)

        return yielding
