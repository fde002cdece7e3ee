"""The HTTP/JSON API on a real server (loopback port, same process as the gRPC server): answers and every error."""

from __future__ import annotations

import http.client
import socket
import threading
from collections.abc import Callable

import grpc
import pytest

from service.config import ConfigError, load_settings
from service.http.errors import HTTP_STATUS
from service.telemetry.metrics import HTTP
from tests.service.fakes import ReversingBackend
from tests.service.harness import ServerThread, wait_for
from tests.support.http import post_json, request

Start = Callable[..., ServerThread]


def translate(server: ServerThread, document: object, **headers: str) -> object:
    return post_json(f"{server.http_url}/v1/translate", document, headers)


def test_translate_answers_in_the_proto3_json_mapping(start_server: Start) -> None:
    server = start_server()
    document = {"texts": ["a b c", ""], "beamSize": 2, "n_best": 2, "return_scores": True, "id": "mine"}
    reply = translate(server, document)
    assert reply.status == 200 and reply.headers["content-type"] == "application/json"
    body = reply.json
    assert (body["model"], body["id"], body["request_id"]) == ("en-fr", "mine", reply.headers["x-request-id"])
    [first, blank] = body["translations"]
    assert [h["text"] for h in first["hypotheses"]] == ["c b a", "c b a #1"]
    assert [h["score"] for h in first["hypotheses"]] == [-1.0, -2.0]
    assert blank["hypotheses"] == [{"text": "", "tokens": [], "score": 0.0}]


def test_attention_comes_as_a_labelled_matrix(start_server: Start) -> None:
    reply = translate(start_server(), {"texts": ["a b"], "return_attention": True})
    [hypothesis] = reply.json["translations"][0]["hypotheses"]
    attention = hypothesis["attention"]
    assert (attention["rows"], attention["cols"]) == (2, 3)
    assert attention["target_tokens"] == ["b", "a"] and attention["source_tokens"] == ["a", "b", "</s>"]
    assert attention["weights"] == pytest.approx([1 / 3] * 6)


def test_list_models_and_health(start_server: Start) -> None:
    server = start_server({"en-fr": ReversingBackend(), "en-de": ReversingBackend("en-de")}, default_model="en-de")
    models = request(f"{server.http_url}/v1/models").json["models"]
    assert [m["name"] for m in models] == ["en-de", "en-fr"]
    assert models[0] == {
        "name": "en-de",
        "version": "1",
        "source_language": "en",
        "target_language": "fr",
        "provider": "CPUExecutionProvider",
    }
    assert request(f"{server.http_url}/healthz").json == {"status": "SERVING"}
    assert request(f"{server.http_url}/readyz").json == {"status": "SERVING"}


def test_readiness_follows_warm_up(start_server: Start) -> None:
    server = start_server(warm=False)
    before = request(f"{server.http_url}/readyz")
    server.call(server.server.warm_up())
    assert (before.status, before.json, request(f"{server.http_url}/readyz").status) == (
        503,
        {"status": "NOT_SERVING"},
        200,
    )


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{", "the body is not valid JSON: Expecting property name enclosed in double quotes"),
        (b"\xff\xfe", "the body is not valid JSON"),
        (b"[1]", "the body must be a JSON object with the fields of TranslateRequest, not list"),
        (b'"text"', "the body must be a JSON object with the fields of TranslateRequest, not str"),
        (b'{"texts": "a"}', "the body is not a valid TranslateRequest: Failed to parse texts field"),
        (b'{"texts": [1]}', "the body is not a valid TranslateRequest: Failed to parse texts field"),
        (b'{"texts": ["a"], "beam_size": "four"}', "Failed to parse beam_size field"),
        (b'{"texts": ["a"], "beam_size": -1}', "Failed to parse beam_size field: Value out of range: -1"),
        (b'{"texts": ["a"], "beam_size": 1.5}', "Failed to parse beam_size field"),
        (b'{"texts": ["a"], "return_scores": "yes"}', "Failed to parse return_scores field"),
        (b'{"texts": ["a"], "colour": "red"}', 'has no field named "colour"'),
        (b"[" * 100_000, "the body is not valid JSON"),
        (b'{"texts": []}', "texts is empty; send at least one text"),
        (b'{"texts": ["a"], "beam_size": 99}', "beam_size is 99; it must be between 1 and 8 (0 means 1)"),
        (b'{"texts": ["a"], "length_penalty": "NaN"}', "length_penalty is nan; it must be in (0, 5]"),
    ],
)
def test_bad_input_is_400_naming_what_is_wrong(start_server: Start, body: bytes, message: str) -> None:
    server = start_server()
    reply = request(f"{server.http_url}/v1/translate", body, {"content-type": "application/json"})
    assert reply.status == 400
    assert reply.error["status"] == "INVALID_ARGUMENT" and reply.error["code"] == 400
    assert message in reply.error["message"]
    assert translate(server, {"texts": ["still serving"]}).status == 200


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded"])
def test_a_body_not_sent_as_json_is_415(start_server: Start, content_type: str | None) -> None:
    server = start_server()
    headers = {"content-type": content_type} if content_type else {}
    reply = request(f"{server.http_url}/v1/translate", b'{"texts": ["a"]}', headers)
    assert reply.status == 415 and "send the body as application/json" in reply.error["message"]


def test_json_with_a_charset_is_json(start_server: Start) -> None:
    server = start_server()
    headers = {"content-type": "Application/JSON; charset=utf-8"}
    assert request(f"{server.http_url}/v1/translate", b'{"texts": ["a b"]}', headers).status == 200


def test_a_body_over_the_message_size_limit_is_413(start_server: Start) -> None:
    server = start_server(max_message_bytes=4096)
    reply = translate(server, {"texts": ["x" * 5000]})
    assert reply.status == 413 and reply.error["status"] == "RESOURCE_EXHAUSTED"
    assert reply.error["message"] == "the request body exceeds 4096 bytes, the most this server takes"
    assert translate(server, {"texts": ["x" * 1000]}).status == 200


def test_a_response_over_the_message_size_limit_is_429(start_server: Start) -> None:
    server = start_server(max_message_bytes=4096)
    reply = translate(server, {"texts": ["a b c d e f"] * 60, "n_best": 4, "beam_size": 4, "return_attention": True})
    assert reply.status == 429 and reply.error["message"].startswith("the response would be ")


def test_unknown_model_is_404(start_server: Start) -> None:
    reply = translate(start_server(), {"texts": ["a"], "model": "en-ja"})
    assert reply.status == 404 and reply.error["message"] == "unknown model 'en-ja'; available models: en-fr"


def test_unknown_path_and_method_are_json_errors(start_server: Start) -> None:
    server = start_server()
    missing, wrong = request(f"{server.http_url}/v2/translate"), request(f"{server.http_url}/v1/translate")
    assert (missing.status, missing.error["status"]) == (404, "NOT_FOUND")
    assert (wrong.status, wrong.error["status"]) == (405, "UNIMPLEMENTED")


def test_a_full_queue_is_429(start_server: Start) -> None:
    gate = threading.Event()
    server = start_server({"en-fr": ReversingBackend(gate=gate)}, max_queue_size=2, max_texts_per_request=2)
    running = threading.Thread(target=translate, args=(server, {"texts": ["busy"]}))
    running.start()
    wait_for(lambda: server.sample("mt_inflight_requests", {"method": "Translate"}) == 1)
    waiting = threading.Thread(target=translate, args=(server, {"texts": ["a", "b"]}))
    waiting.start()
    wait_for(lambda: server.depth() == 2)
    refused = translate(server, {"texts": ["c"]})
    gate.set()
    running.join(10)
    waiting.join(10)
    assert refused.status == 429 and refused.error["status"] == "RESOURCE_EXHAUSTED"


def test_a_passed_deadline_is_504(start_server: Start) -> None:
    gate = threading.Event()
    server = start_server({"en-fr": ReversingBackend(gate=gate)})
    running = threading.Thread(target=translate, args=(server, {"texts": ["busy"]}))
    running.start()
    wait_for(lambda: server.sample("mt_inflight_requests", {"method": "Translate"}) == 1)
    late = translate(server, {"texts": ["late"]}, **{"x-timeout-ms": "50"})
    gate.set()
    running.join(10)
    assert late.status == 504 and late.error["status"] == "DEADLINE_EXCEEDED"


@pytest.mark.parametrize("timeout", ["0", "-5", "soon", "inf"])
def test_a_bad_timeout_header_is_400(start_server: Start, timeout: str) -> None:
    reply = translate(start_server(), {"texts": ["a"]}, **{"x-timeout-ms": timeout})
    assert reply.status == 400 and "send a positive number of milliseconds" in reply.error["message"]


def test_an_internal_error_is_500_with_the_request_id_only(start_server: Start) -> None:
    server = start_server({"en-fr": ReversingBackend(fail_on="boom")})
    reply = translate(server, {"texts": ["boom"]}, **{"x-request-id": "req-7"})
    assert reply.status == 500 and reply.headers["x-request-id"] == "req-7"
    assert reply.error == {
        "code": 500,
        "status": "INTERNAL",
        "message": "internal error; request id req-7",
        "request_id": "req-7",
    }


def test_shutting_down_is_503(start_server: Start) -> None:
    gate = threading.Event()
    server = start_server({"en-fr": ReversingBackend(gate=gate)}, grace_period_s=10)
    running = threading.Thread(target=translate, args=(server, {"texts": ["busy"]}))
    running.start()
    wait_for(lambda: server.sample("mt_inflight_requests", {"method": "Translate"}) == 1)
    stopping = threading.Thread(target=server.stop)
    stopping.start()
    wait_for(lambda: request(f"{server.http_url}/readyz").status == 503)
    refused = translate(server, {"texts": ["late"]})
    gate.set()
    running.join(10)
    stopping.join(15)
    assert refused.status == 503 and refused.error["status"] == "UNAVAILABLE"


@pytest.mark.parametrize("authorization", [None, "Bearer wrong", "s3cret", "Bearer s3cret, Bearer s3cret"])
def test_without_a_valid_token_the_api_is_401_and_health_open(start_server: Start, authorization: str | None) -> None:
    server = start_server(auth_tokens=["s3cret"])
    headers = {"authorization": authorization} if authorization else {}
    refused = [translate(server, {"texts": ["a"]}, **headers), request(f"{server.http_url}/v1/models", headers=headers)]
    assert [r.status for r in refused] == [401, 401]
    assert refused[0].headers["www-authenticate"] == "Bearer"
    assert "Authorization: Bearer <token>" in refused[0].error["message"]
    assert request(f"{server.http_url}/readyz").status == 200
    assert (
        translate(server, {"texts": ["a b"]}, authorization="Bearer s3cret").json["translations"][0]["hypotheses"][0][
            "text"
        ]
        == "b a"
    )
    labels = {"method": "Translate", "code": "UNAUTHENTICATED", "protocol": HTTP}
    assert server.sample("mt_requests_total", labels) == 1


def test_metrics_name_the_protocol(start_server: Start) -> None:
    server = start_server()
    translate(server, {"texts": ["a"]})
    translate(server, {"texts": ["a"], "beam_size": 99})
    with server.client() as client:
        client.translate(["a"])
    ok = {"method": "Translate", "model": "en-fr", "code": "OK"}
    assert server.sample("mt_requests_total", {**ok, "protocol": "http"}) == 1
    assert server.sample("mt_requests_total", {**ok, "protocol": "grpc"}) == 1
    invalid = {"method": "Translate", "code": "INVALID_ARGUMENT", "protocol": "http"}
    assert server.sample("mt_requests_total", invalid) == 1


def test_the_http_port_can_be_turned_off(start_server: Start) -> None:
    server = start_server(http_port=None)
    assert server.server.http_port is None
    with server.client() as client:
        assert client.translate(["a b"]).translations[0].hypotheses[0].text == "b a"


def test_every_grpc_code_has_an_http_status() -> None:
    assert set(HTTP_STATUS) == set(grpc.StatusCode)


@pytest.mark.parametrize(("value", "port"), [("", None), (" ", None), ("0", 0), ("8081", 8081)])
def test_http_port_setting(monkeypatch: pytest.MonkeyPatch, value: str, port: int | None) -> None:
    monkeypatch.setenv("MT_HTTP_PORT", value)
    assert load_settings().http_port == port


def test_attention_detail_of_a_model_without_the_graph_is_400(start_server: Start) -> None:
    reply = translate(start_server(), {"texts": ["a"], "attention_detail": True})
    assert reply.status == 400
    assert reply.error["message"].startswith(
        "attention_detail: model en-fr has no attention-detail graph (explain.onnx"
    )


def test_a_taken_http_port_stops_the_start_naming_the_setting(start_server: Start) -> None:
    taken = start_server().server.http_port
    with pytest.raises(ConfigError, match=rf"http_port \(MT_HTTP_PORT\): cannot listen on 127.0.0.1:{taken}"):
        ServerThread({"en-fr": ReversingBackend()}, http_port=taken)


def test_connections_send_without_delay(start_server: Start) -> None:
    """TCP_NODELAY on every connection: without it a response written in two parts (headers, body) waits for the
    client's delayed acknowledgement, ~40 ms a request."""
    server = start_server()
    assert server.server.http is not None
    connection = http.client.HTTPConnection("127.0.0.1", server.server.http.port, timeout=10)
    connection.request("GET", "/healthz")
    assert connection.getresponse().read()
    [accepted] = server.server.http._server.server_state.connections
    sock = accepted.transport.get_extra_info("socket")
    assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
    connection.close()
