"""Counts the Translator calls that grpc ends before their handler starts.

A handler counts its own call (Metrics.track, or the refusals of the interceptors). When the server is too busy
to start a call before its deadline, grpc cancels the call first and no handler code runs: this interceptor,
the first of the chain, counts such a call DEADLINE_EXCEEDED with model "". (grpc does not tell why it ended
such a call; a client cancelling in the moments between a call's arrival and its handler is rare.)
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Awaitable, Callable
from typing import Any, TypeAlias

import grpc

from service.telemetry.metrics import GRPC, Metrics

Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"  # generic only in the type stubs
COUNTED_PREFIX = "/translation.v1.Translator/"
_started: contextvars.ContextVar[list[bool]] = contextvars.ContextVar("handler_started")


def handler_started() -> None:
    """Marks the current call as reached by its handler (which counts it)."""
    flag = _started.get(None)
    if flag is not None:
        flag[0] = True


class CallAccounting(grpc.aio.ServerInterceptor):
    """Counts each Translator call that ends before its handler started."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler | None:
        method: str = handler_call_details.method
        task = asyncio.current_task()
        if method.startswith(COUNTED_PREFIX) and task is not None:
            flag = [False]
            _started.set(flag)  # the handler runs later in this same task, in this context
            name = method.removeprefix(COUNTED_PREFIX)
            task.add_done_callback(lambda _: self._count_unstarted(name, flag[0]))
        return await continuation(handler_call_details)

    def _count_unstarted(self, method: str, started: bool) -> None:
        if not started:
            self._metrics.requests.labels(method, "", grpc.StatusCode.DEADLINE_EXCEEDED.name, GRPC).inc()
