"""The gRPC face of the service: request ids, metrics and status codes around TranslationService."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterable, AsyncIterator
from typing import Any

import grpc

from service.api.translation.v1 import translation_pb2 as pb
from service.api.translation.v1 import translation_pb2_grpc as pb_grpc
from service.config import Settings
from service.errors import ErrorStatus
from service.rpc.request_id import begin
from service.telemetry.logs import request_context
from service.telemetry.metrics import GRPC, Metrics
from service.tracking import Call, translate_tracked
from service.translation import TranslationService

Context = grpc.aio.ServicerContext[Any, Any]


class TranslatorServicer(pb_grpc.TranslatorServicer):
    """Implements translation.v1.Translator."""

    def __init__(self, service: TranslationService, metrics: Metrics, settings: Settings) -> None:
        self._service = service
        self._metrics = metrics
        self._max_id_bytes = settings.max_id_bytes
        self._stream_inflight = settings.max_stream_inflight

    async def Translate(self, request: pb.TranslateRequest, context: Context) -> pb.TranslateResponse:
        request_id = begin(context)
        result = await self._run("Translate", request, request_id, _deadline(context))
        if isinstance(result, ErrorStatus):
            await context.abort(result.code, result.message)
        return result

    async def TranslateStream(
        self,
        request_iterator: AsyncIterable[pb.TranslateRequest],
        context: Context,
    ) -> AsyncIterator[pb.TranslateResponse]:
        """Answers each request as soon as it is done; a failed one gets a response with its status.

        At most `max_stream_inflight` requests are read and not yet answered: reading waits while the client
        does not take its answers. A malformed message ends the stream INVALID_ARGUMENT once the requests read
        before it are answered.
        """
        call_id = begin(context)
        deadline = _deadline(context)
        responses: asyncio.Queue[pb.TranslateResponse | None] = asyncio.Queue()
        slots = asyncio.Semaphore(self._stream_inflight)

        async def answer(request: pb.TranslateRequest, request_id: str) -> None:
            result = await self._run("TranslateStream", request, request_id, deadline)
            if isinstance(result, ErrorStatus):
                status = pb.Status(code=result.number, message=result.message)
                echoed = request.id if len(request.id.encode()) <= self._max_id_bytes else ""
                result = pb.TranslateResponse(id=echoed, request_id=request_id, status=status)
            else:
                result.status.SetInParent()
            responses.put_nowait(result)

        async def read() -> None:
            tasks: set[asyncio.Task[None]] = set()
            try:
                n = 0
                async for request in request_iterator:
                    await slots.acquire()
                    task = asyncio.create_task(answer(request, f"{call_id}/{n}"))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)  # a long stream keeps only unfinished tasks
                    n += 1
            except asyncio.CancelledError:
                for task in tasks:
                    task.cancel()
                raise
            finally:
                await asyncio.gather(*tasks, return_exceptions=True)  # the accepted requests are answered
                responses.put_nowait(None)

        reader = asyncio.create_task(read())
        try:
            while (response := await responses.get()) is not None:
                yield response
                slots.release()
            await reader  # raises what ended the reading (a malformed message)
        finally:
            reader.cancel()

    async def ListModels(
        self,
        request: pb.ListModelsRequest,
        context: Context,
    ) -> pb.ListModelsResponse:
        request_id = begin(context)
        with request_context(request_id), self._metrics.track("ListModels", protocol=GRPC):
            return self._service.list_models()

    async def _run(
        self, method: str, request: pb.TranslateRequest, request_id: str, deadline: float | None
    ) -> pb.TranslateResponse | ErrorStatus:
        """Translates one request, recording its metrics; an error comes back as its status."""
        return await translate_tracked(self._service, self._metrics, Call(method, GRPC, request_id, deadline), request)


def _deadline(context: Context) -> float | None:
    remaining = context.time_remaining()
    return None if remaining is None else time.monotonic() + remaining
