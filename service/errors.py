"""The one place that turns exceptions into gRPC status codes and client-safe messages."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

import grpc

log = logging.getLogger(__name__)


class ServiceError(Exception):
    """An error whose message is meant for the client, with the gRPC code it maps to."""

    code = grpc.StatusCode.UNKNOWN


class InvalidRequest(ServiceError):
    """The request is outside the limits; the message says what was wrong and what is allowed."""

    code = grpc.StatusCode.INVALID_ARGUMENT


class ModelNotFound(ServiceError):
    """The request names a model the server does not hold."""

    code = grpc.StatusCode.NOT_FOUND
    SHOWN = 128  # characters of the name repeated in the message (gRPC caps a status message's size)

    def __init__(self, name: str, available: Iterable[str]) -> None:
        shown = name if len(name) <= self.SHOWN else name[: self.SHOWN] + "…"
        super().__init__(f"unknown model {shown!r}; available models: {', '.join(available)}")


class LanguagePairNotFound(ServiceError):
    """The request names a language pair no served model translates."""

    code = grpc.StatusCode.NOT_FOUND

    def __init__(self, source: str, target: str, pairs: Iterable[str]) -> None:
        shown = [s if len(s) <= ModelNotFound.SHOWN else s[: ModelNotFound.SHOWN] + "…" for s in (source, target)]
        super().__init__(f"no model translates {shown[0]!r} to {shown[1]!r}; served pairs: {', '.join(pairs)}")


class QueueFull(ServiceError):
    """The model's queue cannot take the request now; the client should retry later."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class ResponseTooLarge(ServiceError):
    """The response would exceed the server's message size limit."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class DeadlineExceeded(ServiceError):
    """The request's deadline passed before its translations were computed."""

    code = grpc.StatusCode.DEADLINE_EXCEEDED


class Unauthenticated(ServiceError):
    """The call carries no valid bearer token."""

    code = grpc.StatusCode.UNAUTHENTICATED


class Draining(ServiceError):
    """The server is shutting down and takes no new work."""

    code = grpc.StatusCode.UNAVAILABLE


@dataclass(frozen=True)
class ErrorStatus:
    """What a failed request reports to its client."""

    code: grpc.StatusCode
    message: str

    @property
    def number(self) -> int:
        """The numeric status code (google.rpc.Code)."""
        number: int = self.code.value[0]
        return number


def error_status(exc: Exception, request_id: str) -> ErrorStatus:
    """Maps an exception to a status; unexpected ones are logged with their traceback, never sent."""
    if isinstance(exc, ServiceError):
        return ErrorStatus(exc.code, str(exc))
    log.error("internal error in request %s", request_id, exc_info=exc)
    return ErrorStatus(grpc.StatusCode.INTERNAL, f"internal error; request id {request_id}")
