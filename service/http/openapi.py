"""The OpenAPI document of the HTTP API, built from the proto descriptors: a new proto field needs no change here."""

from __future__ import annotations

from typing import Any

from google.protobuf.descriptor import EnumDescriptor, FieldDescriptor
from google.protobuf.message import Message

from service.api.translation.v1 import translation_pb2 as pb

F = FieldDescriptor
INT32 = {"type": "integer", "format": "int32"}
UINT32 = {"type": "integer", "format": "int64", "minimum": 0, "maximum": 2**32 - 1}
INT64 = {"type": ["string", "integer"], "format": "int64", "description": "a decimal number, as a string or not"}
FLOAT = {"type": ["number", "string"], "description": 'a number, or "NaN", "Infinity", "-Infinity"'}
SCALARS: dict[int, dict[str, Any]] = {
    F.TYPE_STRING: {"type": "string"},
    F.TYPE_BOOL: {"type": "boolean"},
    F.TYPE_BYTES: {"type": "string", "format": "byte"},
    F.TYPE_INT32: INT32,
    F.TYPE_SINT32: INT32,
    F.TYPE_SFIXED32: INT32,
    F.TYPE_UINT32: UINT32,
    F.TYPE_FIXED32: UINT32,
    F.TYPE_INT64: INT64,
    F.TYPE_SINT64: INT64,
    F.TYPE_SFIXED64: INT64,
    F.TYPE_UINT64: INT64,
    F.TYPE_FIXED64: INT64,
    F.TYPE_FLOAT: FLOAT,
    F.TYPE_DOUBLE: FLOAT,
}
ERROR_STATUSES = {
    "400": "Invalid request: bad JSON, a wrong type or unknown field, or a value outside the server's limits",
    "401": "Missing or wrong bearer token",
    "404": "Unknown model",
    "413": "Request body larger than the server takes",
    "415": "Body not sent as application/json",
    "429": "The model's queue is full, or the response would be too large",
    "500": "Internal error; the message carries the request id to find in the server's logs",
    "503": "The server is shutting down",
    "504": "The request's deadline (x-timeout-ms) passed",
}


def message_schemas(*roots: type[Message]) -> dict[str, dict[str, Any]]:
    """JSON schemas of `roots` and every message they hold, keyed by message name (proto3 JSON mapping)."""
    schemas: dict[str, dict[str, Any]] = {}
    todo: list[Any] = [root.DESCRIPTOR for root in roots]  # Descriptor, from Python or upb
    while todo:
        message = todo.pop()
        if message.name in schemas:
            continue
        schemas[message.name] = {"type": "object", "additionalProperties": False, "properties": {}}
        for field in message.fields:
            schemas[message.name]["properties"][field.name] = field_schema(field)
            if field.message_type is not None:
                todo.append(field.message_type)
    return schemas


def field_schema(field: FieldDescriptor) -> dict[str, Any]:
    """The schema of one field's JSON value (an array for a repeated field)."""
    if field.message_type is not None:
        value: dict[str, Any] = {"$ref": f"#/components/schemas/{field.message_type.name}"}
    elif field.enum_type is not None:
        value = enum_schema(field.enum_type)
    else:
        value = dict(SCALARS[field.type])
    return {"type": "array", "items": value} if _repeated(field) else value


def _repeated(field: FieldDescriptor) -> bool:
    """protobuf 7 has only `is_repeated`; versions before 5.29 only `label`."""
    if hasattr(field, "is_repeated"):
        return bool(field.is_repeated)
    return bool(getattr(field, "label") == F.LABEL_REPEATED)  # noqa: B009


def enum_schema(enum: EnumDescriptor) -> dict[str, Any]:
    return {"type": ["string", "integer"], "enum": [v.name for v in enum.values] + [v.number for v in enum.values]}


def openapi_document(version: str) -> dict[str, Any]:
    """The OpenAPI 3.1 document of the API at /openapi.json."""
    schemas = message_schemas(pb.TranslateRequest, pb.TranslateResponse, pb.ListModelsResponse)
    schemas["Error"] = ERROR_SCHEMA
    schemas["Health"] = HEALTH_SCHEMA
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "mt-serve translation API",
            "version": version,
            "description": "The gRPC service translation.v1.Translator over HTTP/JSON (the proto3 JSON mapping;"
            " requests take the .proto field names or their lowerCamelCase JSON names).",
        },
        "paths": {
            "/v1/translate": {"post": TRANSLATE_OPERATION},
            "/v1/models": {
                "get": _operation("ListModels", "The served models, the default first.", "ListModelsResponse")
            },
            "/healthz": {"get": _health("Liveness: 200 while the process serves HTTP.")},
            "/readyz": {"get": _health("Readiness: 200 once every model is warmed up, 503 before and on shutdown.")},
        },
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}, {}],
    }


def _ref(name: str) -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": f"#/components/schemas/{name}"}}}


def _operation(operation_id: str, summary: str, response: str) -> dict[str, Any]:
    errors = {status: {"description": text, "content": _ref("Error")} for status, text in ERROR_STATUSES.items()}
    return {
        "operationId": operation_id,
        "summary": summary,
        "parameters": [REQUEST_ID_HEADER],
        "responses": {"200": {"description": "OK", "content": _ref(response)}, **errors},
    }


def _health(summary: str) -> dict[str, Any]:
    return {
        "summary": summary,
        "security": [],
        "responses": {
            "200": {"description": "SERVING", "content": _ref("Health")},
            "503": {"description": "NOT_SERVING", "content": _ref("Health")},
        },
    }


REQUEST_ID_HEADER = {
    "name": "x-request-id",
    "in": "header",
    "required": False,
    "description": "The request id to use (at most 128 characters of [A-Za-z0-9._:/-]); it comes back in the"
    " response's x-request-id header.",
    "schema": {"type": "string"},
}
TIMEOUT_HEADER = {
    "name": "x-timeout-ms",
    "in": "header",
    "required": False,
    "description": "Deadline of the request in milliseconds; past it the request ends with 504.",
    "schema": {"type": "number", "exclusiveMinimum": 0},
}
TRANSLATE_OPERATION = {
    **_operation(
        "Translate", "Translates a batch of texts; the translations come back in input order.", "TranslateResponse"
    ),
    "parameters": [REQUEST_ID_HEADER, TIMEOUT_HEADER],
    "requestBody": {"required": True, "content": _ref("TranslateRequest")},
}
ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "status", "message", "request_id"],
            "properties": {
                "code": {"type": "integer", "description": "the HTTP status"},
                "status": {"type": "string", "description": "the gRPC status code name (INVALID_ARGUMENT, ...)"},
                "message": {"type": "string", "description": "what was wrong and what is allowed"},
                "request_id": {"type": "string"},
            },
        }
    },
}
HEALTH_SCHEMA = {
    "type": "object",
    "required": ["status"],
    "properties": {"status": {"type": "string", "enum": ["SERVING", "NOT_SERVING"]}},
}
