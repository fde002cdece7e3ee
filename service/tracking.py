"""One Translate request as every transport answers it: metrics, access log line and error status."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from service.api.translation.v1 import translation_pb2 as pb
from service.errors import ErrorStatus, error_status
from service.telemetry.logs import request_context
from service.telemetry.metrics import Metrics
from service.translation import TranslationService

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Call:
    """Where a request came from: its method name, transport ("grpc" or "http"), request id and deadline.

    `deadline` is a time.monotonic() instant or None.
    """

    method: str
    protocol: str
    request_id: str
    deadline: float | None = None


async def translate_tracked(
    service: TranslationService, metrics: Metrics, call: Call, request: pb.TranslateRequest
) -> pb.TranslateResponse | ErrorStatus:
    """Translates one request, recording its metrics and access log line; an error comes back as its status."""
    model = service.model_label(request)
    result: pb.TranslateResponse | ErrorStatus
    with request_context(call.request_id), metrics.track(call.method, model, call.deadline, call.protocol) as outcome:
        try:
            result = await service.translate(request, call.request_id, call.deadline)
        except Exception as exc:
            result = error_status(exc, call.request_id)
            outcome.code = result.code
        log.info("%s %s model=%s texts=%d: %s", call.protocol, call.method, model, len(request.texts), describe(result))
    return result


def describe(result: pb.TranslateResponse | ErrorStatus) -> str:
    """The outcome as the access log writes it: OK, or the status code and message."""
    return f"{result.code.name} {result.message}" if isinstance(result, ErrorStatus) else "OK"
