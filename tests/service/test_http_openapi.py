"""/openapi.json matches the proto: every message and field, and the server's real answers validate against it."""

from __future__ import annotations

import ssl
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from google.protobuf.descriptor import FieldDescriptor

from service.api.translation.v1 import translation_pb2 as pb
from tests.service.fakes import ReversingBackend
from tests.service.harness import ServerThread
from tests.service.test_security import _self_signed
from tests.support.http import post_json, request

Start = Callable[..., ServerThread]
ROOTS = (pb.TranslateRequest, pb.TranslateResponse, pb.ListModelsResponse)


def reachable(descriptor: Any, seen: dict[str, Any]) -> dict[str, Any]:
    """`descriptor` and every message its fields hold, by name."""
    if descriptor.name not in seen:
        seen[descriptor.name] = descriptor
        for field in descriptor.fields:
            if field.message_type is not None:
                reachable(field.message_type, seen)
    return seen


def validator(document: dict[str, Any], name: str) -> jsonschema.Draft202012Validator:
    """A validator of component schema `name`, resolving its references inside `document`."""
    schema = {"$ref": f"#/components/schemas/{name}", "components": document["components"]}
    return jsonschema.Draft202012Validator(schema)


@pytest.fixture(scope="module")
def server() -> Iterator[ServerThread]:
    running = ServerThread({"en-fr": ReversingBackend()})
    yield running
    running.close()


@pytest.fixture(scope="module")
def document(server: ServerThread) -> dict[str, Any]:
    reply = request(f"{server.http_url}/openapi.json")
    assert reply.status == 200
    result: dict[str, Any] = reply.json
    return result


def test_every_message_and_field_of_the_proto_is_in_the_document(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    messages: dict[str, Any] = {}
    for root in ROOTS:
        reachable(root.DESCRIPTOR, messages)
    assert set(messages) <= set(schemas)
    for name, descriptor in messages.items():
        properties = schemas[name]["properties"]
        assert set(properties) == {field.name for field in descriptor.fields}, name
        assert schemas[name]["additionalProperties"] is False
        for field in descriptor.fields:
            repeated = field.is_repeated if hasattr(field, "is_repeated") else field.label == 3
            value = properties[field.name]["items"] if repeated else properties[field.name]
            assert (properties[field.name].get("type") == "array") == repeated, (name, field.name)
            if field.message_type is not None:
                assert value == {"$ref": f"#/components/schemas/{field.message_type.name}"}
            elif field.type == FieldDescriptor.TYPE_STRING:
                assert value["type"] == "string"
            elif field.type == FieldDescriptor.TYPE_BOOL:
                assert value["type"] == "boolean"
            else:
                assert "integer" in value["type"] or "number" in value["type"], (name, field.name)


def test_paths_and_their_statuses(document: dict[str, Any]) -> None:
    assert document["openapi"].startswith("3.1")
    translate = document["paths"]["/v1/translate"]["post"]
    assert translate["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("/TranslateRequest")
    expected = {"200", "400", "401", "404", "413", "415", "429", "500", "503", "504"}
    assert set(translate["responses"]) == expected
    assert set(document["paths"]) == {"/v1/translate", "/v1/models", "/healthz", "/readyz"}


def test_real_answers_validate_against_the_document(server: ServerThread, document: dict[str, Any]) -> None:
    asked = {"texts": ["a b", ""], "beam_size": 2, "n_best": 2, "return_scores": True, "return_attention": True}
    validator(document, "TranslateRequest").validate(asked)
    answer = post_json(f"{server.http_url}/v1/translate", asked)
    validator(document, "TranslateResponse").validate(answer.json)
    validator(document, "ListModelsResponse").validate(request(f"{server.http_url}/v1/models").json)
    error = post_json(f"{server.http_url}/v1/translate", {"texts": []})
    validator(document, "Error").validate(error.json)
    validator(document, "Health").validate(request(f"{server.http_url}/readyz").json)


def test_the_document_refuses_what_the_server_refuses(document: dict[str, Any]) -> None:
    check = validator(document, "TranslateRequest")
    for bad in ({"texts": "a"}, {"colour": "red"}, {"beam_size": -1}, {"return_scores": "yes"}):
        assert not check.is_valid(bad), bad


def test_https_with_the_grpc_certificate(start_server: Start, tmp_path: Path) -> None:
    cert_file, key_file = _self_signed(tmp_path)
    server = start_server(tls_cert_file=cert_file, tls_key_file=key_file)
    context = ssl.create_default_context(cafile=str(cert_file))
    reply = post_json(f"{server.http_url}/v1/translate", {"texts": ["over tls"]}, context=context)
    assert reply.status == 200 and reply.json["translations"][0]["hypotheses"][0]["text"] == "tls over"
    plain = server.http_url.replace("https://", "http://")
    with pytest.raises(OSError):
        request(f"{plain}/healthz", timeout=5)
