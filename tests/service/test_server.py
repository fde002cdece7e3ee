"""A real gRPC server with the word-reversing backend, through the real client."""

from __future__ import annotations

import asyncio
import logging
import urllib.request
from collections.abc import Callable

import grpc
import pytest

from service.api.translation.v1 import translation_pb2 as pb
from service.api.translation.v1 import translation_pb2_grpc as pb_grpc
from service.config import ConfigError, Settings
from service.server import build_server
from tests.service.fakes import ReversingBackend, reverse
from tests.service.harness import ServerThread

Start = Callable[..., ServerThread]


def test_round_trip(start_server: Start) -> None:
    server = start_server()
    with server.client() as client:
        response = client.translate(["hello big world", "", "  ", "Ünïcødé ✓ 漢字"])
    best = [t.hypotheses[0].text for t in response.translations]
    assert best == ["world big hello", "", "", "漢字 ✓ Ünïcødé"]
    assert [len(t.hypotheses) for t in response.translations] == [1, 1, 1, 1]
    assert response.translations[0].hypotheses[0].tokens == ["world", "big", "hello"]
    assert response.translations[0].hypotheses[0].score == 0.0  # not asked for
    assert not response.translations[0].source_tokens
    assert not response.translations[0].hypotheses[0].HasField("attention")
    assert response.model == "en-fr"
    assert response.request_id


def test_request_id_comes_from_metadata_and_returns_in_trailers(start_server: Start) -> None:
    server = start_server()
    stub = pb_grpc.TranslatorStub(server.channel())
    request = pb.TranslateRequest(texts=["a b"])
    response, call = stub.Translate.with_call(request, metadata=[("x-request-id", "abc-123")], timeout=10)
    assert response.request_id == "abc-123"
    assert ("x-request-id", "abc-123") in call.trailing_metadata()
    response, call = stub.Translate.with_call(request, metadata=[("x-request-id", "has space")], timeout=10)
    assert response.request_id != "has space" and len(response.request_id) == 32
    assert ("x-request-id", response.request_id) in call.trailing_metadata()


def test_scores_n_best_and_attention(start_server: Start) -> None:
    server = start_server()
    with server.client() as client:
        response = client.translate(["a b c"], beam_size=3, n_best=2, return_scores=True, return_attention=True)
    [translation] = response.translations
    assert [h.text for h in translation.hypotheses] == ["c b a", "c b a #1"]
    assert [h.score for h in translation.hypotheses] == [-1.0, -2.0]
    assert list(translation.source_tokens) == ["a", "b", "c", "</s>"]
    attention = translation.hypotheses[0].attention
    assert (attention.rows, attention.cols) == (3, 4)
    assert len(attention.weights) == 12 and sum(attention.weights) == pytest.approx(3.0)
    assert list(attention.target_tokens) == ["c", "b", "a"]
    assert list(attention.source_tokens) == ["a", "b", "c", "</s>"]


def test_list_models(start_server: Start) -> None:
    server = start_server()
    with server.client() as client:
        [info] = client.list_models()
    assert (info.name, info.version, info.source_language, info.target_language) == ("en-fr", "1", "en", "fr")
    assert info.provider == "CPUExecutionProvider"


def test_concurrent_calls_are_batched_and_each_gets_its_answer(start_server: Start) -> None:
    server = start_server({"en-fr": ReversingBackend(delay=0.01)}, max_batch_size=16)
    texts = [f"caller {i} says hi" for i in range(120)]

    async def call_all() -> list[str]:
        async with grpc.aio.insecure_channel(server.address) as channel:
            stub = pb_grpc.TranslatorStub(channel)
            calls = [stub.Translate(pb.TranslateRequest(texts=[t]), timeout=20) for t in texts]
            return [r.translations[0].hypotheses[0].text for r in await asyncio.gather(*calls)]

    assert asyncio.run(call_all()) == [reverse(t) for t in texts]
    labels = {"model": "en-fr"}
    batches = server.sample("mt_batch_size_sentences_count", labels)
    singles = server.sample("mt_batch_size_sentences_bucket", {**labels, "le": "1.0"})
    assert server.sample("mt_batch_size_sentences_sum", labels) == 120
    assert batches < 120 and singles < batches  # some batches held several callers' sentences
    assert server.sample("mt_batch_size_sentences_bucket", {**labels, "le": "16.0"}) == batches
    assert server.sample("mt_requests_total", {"method": "Translate", "model": "en-fr", "code": "OK"}) == 120


def test_stream_answers_each_request_and_reports_errors_inline(start_server: Start) -> None:
    server = start_server()
    requests = [pb.TranslateRequest(id=f"r{i}", texts=[f"x{i} y{i}"]) for i in range(5)]
    requests.insert(2, pb.TranslateRequest(id="bad", texts=["z"], beam_size=99))
    with server.client() as client:
        responses = {r.id: r for r in client.translate_stream(requests)}
    assert set(responses) == {"bad", "r0", "r1", "r2", "r3", "r4"}
    assert responses["bad"].status.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert "beam_size is 99" in responses["bad"].status.message
    assert not responses["bad"].translations
    for i in range(5):
        response = responses[f"r{i}"]
        assert response.status.code == 0
        assert response.translations[0].hypotheses[0].text == f"y{i} x{i}"
    assert len({r.request_id for r in responses.values()}) == 6


def test_two_models_side_by_side(start_server: Start) -> None:
    de_en = ReversingBackend(name="de-en")
    server = start_server({"en-fr": ReversingBackend(), "de-en": de_en})
    with server.client() as client:
        assert [m.name for m in client.list_models()] == ["en-fr", "de-en"]
        response = client.translate(["guten tag"], model="de-en")
        assert response.model == "de-en" and response.translations[0].hypotheses[0].text == "tag guten"
        assert client.translate(["hello"]).model == "en-fr"
        with pytest.raises(grpc.RpcError) as error:
            client.translate(["x"], model="ja-en")
    assert ["guten tag"] in de_en.batches
    assert error.value.code() == grpc.StatusCode.NOT_FOUND
    assert error.value.details() == "unknown model 'ja-en'; available models: en-fr, de-en"


def test_the_default_model_is_a_setting(start_server: Start) -> None:
    backends = {"de-en": ReversingBackend(name="de-en"), "en-fr": ReversingBackend()}
    server = start_server(backends, default_model="en-fr")
    with server.client() as client:
        assert [m.name for m in client.list_models()] == ["en-fr", "de-en"]  # the default first
        assert client.translate(["hello"]).model == "en-fr"
    with pytest.raises(ConfigError, match="default_model: unknown model 'ja-en'; available models: de-en, en-fr"):
        build_server(Settings(default_model="ja-en"), backends)  # refused before anything is built


def test_internal_errors_carry_a_request_id_and_no_details(
    start_server: Start, caplog: pytest.LogCaptureFixture
) -> None:
    server = start_server({"en-fr": ReversingBackend(fail_on="boom")})
    with server.client() as client, caplog.at_level(logging.ERROR), pytest.raises(grpc.RpcError) as error:
        client.translate(["boom"], request_id="req-42")
    assert error.value.code() == grpc.StatusCode.INTERNAL
    assert error.value.details() == "internal error; request id req-42"
    logged = [r for r in caplog.records if "req-42" in r.getMessage()]
    assert logged and logged[0].exc_info is not None  # the traceback is in the log, not the response
    code = {"method": "Translate", "model": "en-fr", "code": "INTERNAL"}
    assert server.sample("mt_requests_total", code) == 1


def test_metrics_endpoint(start_server: Start) -> None:
    server = start_server()
    with server.client() as client:
        client.translate(["a b"])
    with urllib.request.urlopen(f"http://127.0.0.1:{server.server.metrics_port}/metrics", timeout=5) as page:
        text = page.read().decode()
    assert (
        'mt_model_info{model="en-fr",provider="CPUExecutionProvider",requested_provider="CPUExecutionProvider",'
        'source_language="en",target_language="fr",version="1"} 1.0' in text
    )
    assert 'mt_requests_total{code="OK",method="Translate",model="en-fr",protocol="grpc"} 1.0' in text
    for name in (
        "mt_request_duration_seconds_bucket",
        "mt_queue_wait_seconds_bucket",
        "mt_batch_inference_seconds_bucket",
        "mt_batch_size_sentences_bucket",
        "mt_batch_size_tokens_bucket",
        "mt_input_tokens_total",
        "mt_output_tokens_total",
        "mt_sentences_total",
        "mt_inflight_requests",
        "mt_queue_depth",
        "mt_queue_capacity",
    ):
        assert name in text


def test_capitals_reach_the_model_in_sentence_case_and_come_back_in_capitals(start_server: Start) -> None:
    backend = ReversingBackend()
    server = start_server({"en-fr": backend})
    with server.client() as client:
        response = client.translate(["THE BIG DOG RUNS.", "The Big Red Dog Runs."])
    assert [t.hypotheses[0].text for t in response.translations] == ["RUNS. DOG BIG THE", "Runs. Dog Red Big The"]
    assert ["The big dog runs.", "The big red dog runs."] in backend.batches
    assert response.translations[0].hypotheses[0].tokens == ["runs.", "dog", "big", "The"]  # the model's own
