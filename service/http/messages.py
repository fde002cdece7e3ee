"""Protobuf messages as JSON bodies (the proto3 JSON mapping), with the HTTP checks of a request body."""

from __future__ import annotations

import json
from typing import Any, TypeVar

import grpc
from google.protobuf import json_format
from google.protobuf.message import Message
from starlette.requests import Request

from service.http.errors import HttpError

M = TypeVar("M", bound=Message)
JSON_MEDIA_TYPE = "application/json"


async def read_message(request: Request, message_type: type[M], limit: int) -> M:
    """The request's body as a `message_type`; raises HttpError 415, 413 or 400 saying what is wrong."""
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type != JSON_MEDIA_TYPE:
        shown = f"content type {media_type!r}" if media_type else "no content type"
        raise HttpError(grpc.StatusCode.INVALID_ARGUMENT, f"{shown}; send the body as {JSON_MEDIA_TYPE}", status=415)
    return parse_message(await _read_body(request, limit), message_type)


async def _read_body(request: Request, limit: int) -> bytes:
    """The body, refused (413) as soon as it is known to exceed `limit` bytes."""
    too_large = HttpError(
        grpc.StatusCode.RESOURCE_EXHAUSTED, f"the request body exceeds {limit} bytes, the most this server takes", 413
    )
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise too_large
    return bytes(body)


def parse_message(body: bytes, message_type: type[M]) -> M:
    """`body` (JSON) as a `message_type`; unknown fields, wrong types and bad JSON raise HttpError 400."""
    name = message_type.DESCRIPTOR.name
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise _invalid(f"the body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise _invalid(f"the body must be a JSON object with the fields of {name}, not {type(data).__name__}")
    message = message_type()
    try:
        json_format.ParseDict(data, message, ignore_unknown_fields=False)
    except (json_format.ParseError, ValueError, TypeError, RecursionError) as exc:
        raise _invalid(f"the body is not a valid {name}: {exc}") from None
    return message


def to_json(message: Message) -> dict[str, Any]:
    """`message` in the proto3 JSON mapping, with the .proto field names and every field (defaults included)."""
    return json_format.MessageToDict(
        message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )


def _invalid(message: str) -> HttpError:
    return HttpError(grpc.StatusCode.INVALID_ARGUMENT, message)
