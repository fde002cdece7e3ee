"""Bearer-token authentication of every call but health checks (gRPC here; HTTP uses `bearer_accepted`)."""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeAlias

import grpc

from service.errors import Unauthenticated, error_status
from service.rpc.accounting import handler_started
from service.rpc.request_id import begin
from service.telemetry.metrics import GRPC, Metrics

EXEMPT_PREFIX = "/grpc.health.v1.Health/"

Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"  # generic only in the type stubs


class BearerAuthInterceptor(grpc.aio.ServerInterceptor):
    """Lets a call through only with metadata `authorization: Bearer <token>` naming an accepted token."""

    def __init__(self, tokens: Sequence[str], metrics: Metrics) -> None:
        self._tokens = [t.encode() for t in tokens]
        self._metrics = metrics

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler | None:
        handler = await continuation(handler_call_details)
        method: str = handler_call_details.method
        if handler is None or method.startswith(EXEMPT_PREFIX) or self._authorized(handler_call_details):
            return handler
        method_name = method.rsplit("/", 1)[-1]
        self._metrics.requests.labels(method_name, "", grpc.StatusCode.UNAUTHENTICATED.name, GRPC).inc()
        handler_started()  # counted here, even if the call ends before its refusal is sent
        return _denied(handler)

    def _authorized(self, details: grpc.HandlerCallDetails) -> bool:
        metadata = details.invocation_metadata or ()
        return bearer_accepted([v for k, v in metadata if k == "authorization"], self._tokens)


def bearer_accepted(values: Sequence[object], tokens: Sequence[bytes]) -> bool:
    """Whether `values`, a call's `authorization` values, are one `Bearer <token>` naming one of `tokens`."""
    if len(values) != 1 or not isinstance(values[0], str) or not values[0].startswith("Bearer "):
        return False
    given = values[0].removeprefix("Bearer ").strip().encode()
    return any(hmac.compare_digest(given, token) for token in tokens)


async def _refuse(request: object, context: grpc.aio.ServicerContext[Any, Any]) -> None:
    status = error_status(
        Unauthenticated("missing or invalid bearer token; send metadata `authorization: Bearer <token>`"),
        begin(context),
    )
    await context.abort(status.code, status.message)


def _denied(handler: Handler) -> Handler:
    """A handler of the same kind as `handler` that refuses the call."""
    serializers = {
        "request_deserializer": handler.request_deserializer,
        "response_serializer": handler.response_serializer,
    }
    if handler.unary_unary:
        return grpc.unary_unary_rpc_method_handler(_refuse, **serializers)
    if handler.unary_stream:
        return grpc.unary_stream_rpc_method_handler(_refuse, **serializers)
    if handler.stream_unary:
        return grpc.stream_unary_rpc_method_handler(_refuse, **serializers)
    return grpc.stream_stream_rpc_method_handler(_refuse, **serializers)
