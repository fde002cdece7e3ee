"""Errors over HTTP: the gRPC status of service/errors.py as an HTTP status and a JSON body."""

from __future__ import annotations

from collections.abc import Mapping

import grpc
from starlette.responses import JSONResponse

from service.errors import ErrorStatus

# google.rpc.Code to HTTP, as Google's HTTP APIs map them (google/rpc/code.proto).
HTTP_STATUS: Mapping[grpc.StatusCode, int] = {
    grpc.StatusCode.OK: 200,
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.UNKNOWN: 500,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.INTERNAL: 500,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DATA_LOSS: 500,
    grpc.StatusCode.UNAUTHENTICATED: 401,
}


class HttpError(Exception):
    """A request refused by the HTTP layer itself (body, headers); `status` overrides the gRPC code's HTTP status."""

    def __init__(self, code: grpc.StatusCode, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.error = ErrorStatus(code, message)
        self.status = status or HTTP_STATUS[code]


def error_response(error: ErrorStatus, request_id: str, status: int | None = None) -> JSONResponse:
    """`{"error": {"code": <HTTP status>, "status": <gRPC code name>, "message", "request_id"}}`."""
    http_status = status or HTTP_STATUS[error.code]
    body = {"code": http_status, "status": error.code.name, "message": error.message, "request_id": request_id}
    headers = {"www-authenticate": "Bearer"} if error.code == grpc.StatusCode.UNAUTHENTICATED else None
    return JSONResponse({"error": body}, status_code=http_status, headers=headers)
