"""The HTTP endpoints, over the gRPC server's TranslationService, metrics, limits and bearer tokens."""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import Any

import grpc
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from service.api.translation.v1 import translation_pb2 as pb
from service.config import Settings
from service.errors import ErrorStatus, Unauthenticated, error_status
from service.http.errors import HttpError, error_response
from service.http.messages import read_message, to_json
from service.rpc.auth import bearer_accepted
from service.telemetry.logs import new_request_id, request_context
from service.telemetry.metrics import HTTP, Metrics
from service.tracking import Call, describe, translate_tracked
from service.translation import TranslationService

log = logging.getLogger(__name__)
REQUEST_ID_HEADER = "x-request-id"
TIMEOUT_HEADER = "x-timeout-ms"


@dataclass
class Readiness:
    """Whether the server takes work: False until every model is warmed up, and again from shutdown on."""

    serving: bool = False


class HttpApi:
    """POST /v1/translate, GET /v1/models, /healthz and /readyz."""

    def __init__(self, service: TranslationService, metrics: Metrics, settings: Settings, readiness: Readiness):
        self._service = service
        self._metrics = metrics
        self._limit = settings.max_message_bytes
        self._tokens = [t.get_secret_value().encode() for t in settings.auth_tokens]
        self._readiness = readiness

    async def translate(self, request: Request) -> Response:
        request_id = new_request_id(request.headers.get(REQUEST_ID_HEADER))
        try:
            self._authorize(request)
            message = await read_message(request, pb.TranslateRequest, self._limit)
            call = Call("Translate", HTTP, request_id, _deadline(request))
        except HttpError as refused:
            return self._refuse("Translate", refused, request_id)
        result = await translate_tracked(self._service, self._metrics, call, message)
        if isinstance(result, ErrorStatus):
            return with_request_id(error_response(result, request_id), request_id)
        return json_response(to_json(result), request_id)

    async def list_models(self, request: Request) -> Response:
        request_id = new_request_id(request.headers.get(REQUEST_ID_HEADER))
        try:
            self._authorize(request)
        except HttpError as refused:
            return self._refuse("ListModels", refused, request_id)
        with request_context(request_id), self._metrics.track("ListModels", protocol=HTTP):
            return json_response(to_json(self._service.list_models()), request_id)

    async def healthz(self, request: Request) -> Response:
        """Liveness: the process answers HTTP."""
        return JSONResponse({"status": "SERVING"})

    async def readyz(self, request: Request) -> Response:
        """Readiness: SERVING (200) once warmed up and until shutdown, else NOT_SERVING (503)."""
        serving = self._readiness.serving
        return JSONResponse({"status": "SERVING" if serving else "NOT_SERVING"}, status_code=200 if serving else 503)

    def _authorize(self, request: Request) -> None:
        if self._tokens and not bearer_accepted(request.headers.getlist("authorization"), self._tokens):
            message = "missing or invalid bearer token; send the header `Authorization: Bearer <token>`"
            raise HttpError(Unauthenticated.code, message)

    def _refuse(self, method: str, refused: HttpError, request_id: str) -> Response:
        """The answer to a request the HTTP layer refused, counted and logged like the service's own errors."""
        self._metrics.requests.labels(method, "", refused.error.code.name, HTTP).inc()
        with request_context(request_id):
            log.info("%s %s: %s", HTTP, method, describe(refused.error))
        return with_request_id(error_response(refused.error, request_id, refused.status), request_id)


def _deadline(request: Request) -> float | None:
    """The time.monotonic() instant of the request's x-timeout-ms header, or None without one."""
    value = request.headers.get(TIMEOUT_HEADER)
    if value is None:
        return None
    try:
        milliseconds = float(value)
    except ValueError:
        milliseconds = math.nan
    if not (math.isfinite(milliseconds) and milliseconds > 0):
        shown = value if len(value) <= 32 else value[:32] + "…"
        message = f"{TIMEOUT_HEADER} is {shown!r}; send a positive number of milliseconds"
        raise HttpError(grpc.StatusCode.INVALID_ARGUMENT, message)
    return time.monotonic() + milliseconds / 1000


def json_response(body: dict[str, Any], request_id: str) -> Response:
    return with_request_id(JSONResponse(body), request_id)


def with_request_id(response: Response, request_id: str) -> Response:
    response.headers[REQUEST_ID_HEADER] = request_id
    return response


def internal_error(exc: Exception) -> Response:
    """500 for an error no endpoint handled; logged with its traceback under a new request id, never sent."""
    request_id = new_request_id()
    return with_request_id(error_response(error_status(exc, request_id), request_id), request_id)
