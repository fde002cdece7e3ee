"""The gRPC face of the service: request ids, metrics and status codes around TranslationService."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterable, AsyncIterator
from typing import Any

import grpc

from service.api.translation.v1 import translation_pb2 as pb
from service.api.translation.v1 import translation_pb2_grpc as pb_grpc
from service.errors import ErrorStatus, error_status
from service.logs import new_request_id, request_context
from service.metrics import Metrics
from service.translation import TranslationService

log = logging.getLogger(__name__)
REQUEST_ID_KEY = "x-request-id"
Context = grpc.aio.ServicerContext[Any, Any]


class TranslatorServicer(pb_grpc.TranslatorServicer):
    """Implements translation.v1.Translator."""

    def __init__(self, service: TranslationService, metrics: Metrics) -> None:
        self._service = service
        self._metrics = metrics

    async def Translate(self, request: pb.TranslateRequest, context: Context) -> pb.TranslateResponse:
        request_id = _begin(context)
        result = await self._run("Translate", request, request_id, _deadline(context))
        if isinstance(result, ErrorStatus):
            await context.abort(result.code, result.message)
        return result

    async def TranslateStream(
        self,
        request_iterator: AsyncIterable[pb.TranslateRequest],
        context: Context,
    ) -> AsyncIterator[pb.TranslateResponse]:
        """Answers each request as soon as it is done; a failed one gets a response with its status."""
        call_id = _begin(context)
        deadline = _deadline(context)
        responses: asyncio.Queue[pb.TranslateResponse | None] = asyncio.Queue()

        async def answer(request: pb.TranslateRequest, request_id: str) -> None:
            result = await self._run("TranslateStream", request, request_id, deadline)
            if isinstance(result, ErrorStatus):
                status = pb.Status(code=result.number, message=result.message)
                result = pb.TranslateResponse(id=request.id, request_id=request_id, status=status)
            else:
                result.status.SetInParent()
            responses.put_nowait(result)

        async def read() -> None:
            tasks: set[asyncio.Task[None]] = set()
            try:
                n = 0
                async for request in request_iterator:
                    task = asyncio.create_task(answer(request, f"{call_id}/{n}"))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)  # a long stream keeps only unfinished tasks
                    n += 1
                await asyncio.gather(*tasks)
            finally:
                for task in tasks:
                    task.cancel()
                responses.put_nowait(None)

        reader = asyncio.create_task(read())
        try:
            while (response := await responses.get()) is not None:
                yield response
            await reader
        finally:
            reader.cancel()

    async def ListModels(
        self,
        request: pb.ListModelsRequest,
        context: Context,
    ) -> pb.ListModelsResponse:
        request_id = _begin(context)
        with request_context(request_id), self._metrics.track("ListModels"):
            return self._service.list_models()

    async def _run(
        self, method: str, request: pb.TranslateRequest, request_id: str, deadline: float | None
    ) -> pb.TranslateResponse | ErrorStatus:
        """Translates one request, recording its metrics; an error comes back as its status."""
        model = self._service.model_label(request)
        result: pb.TranslateResponse | ErrorStatus
        with request_context(request_id), self._metrics.track(method, model) as outcome:
            try:
                result = await self._service.translate(request, request_id, deadline)
            except Exception as exc:
                result = error_status(exc, request_id)
                outcome.code = result.code
            log.info("%s model=%s texts=%d: %s", method, model, len(request.texts), _describe(result))
        return result


def _begin(context: Context) -> str:
    """The call's request id (the client's x-request-id if valid), also sent back as trailing metadata."""
    proposed = next((str(v) for k, v in context.invocation_metadata() or () if k == REQUEST_ID_KEY), None)
    request_id = new_request_id(proposed)
    context.set_trailing_metadata(((REQUEST_ID_KEY, request_id),))
    return request_id


def _describe(result: pb.TranslateResponse | ErrorStatus) -> str:
    return f"{result.code.name} {result.message}" if isinstance(result, ErrorStatus) else "OK"


def _deadline(context: Context) -> float | None:
    remaining = context.time_remaining()
    return None if remaining is None else time.monotonic() + remaining
