"""The service process with real models: its answers are the engine's, per model; health, reflection, CLI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import grpc
import pytest
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from bench.server import ROOT, SERVING, health_status
from service.decoding.engine import Engine
from service.server import SERVICE_NAME
from tests.integration.calls import FP32_MODEL, MODEL, assert_same_translations, best_texts, served_options
from tests.support.service_process import ServiceProcess
from tests.support.tiny import source_sentences

TEXTS = [*source_sentences(5, seed=21), "A man rides a bike.", ""]


def test_greedy_round_trip(service: ServiceProcess, engines: dict[str, Engine]) -> None:
    with service.client() as client:
        response = client.translate(TEXTS)
    assert response.model == MODEL  # the default: the first model folder by name
    assert_same_translations(response, engines[MODEL].translate(TEXTS, served_options()))
    assert best_texts(response)[-1] == ""


def test_beam_n_best_scores_and_attention(service: ServiceProcess, engines: dict[str, Engine]) -> None:
    with service.client() as client:
        response = client.translate(TEXTS, beam_size=4, n_best=3, return_scores=True, return_attention=True)
    expected = engines[MODEL].translate(TEXTS, served_options(beam_size=4, n_best=3, return_attention=True))
    assert_same_translations(response, expected, scores=True, attention=True)
    assert [len(t.hypotheses) for t in response.translations] == [3] * (len(TEXTS) - 1) + [1]


def test_two_models_side_by_side(service: ServiceProcess, engines: dict[str, Engine]) -> None:
    with service.client() as client:
        listed = [(m.name, m.provider) for m in client.list_models()]
        responses = {name: client.translate(TEXTS, model=name, return_scores=True) for name in engines}
        with pytest.raises(grpc.RpcError) as error:
            client.translate(["big car"], model="en-ja")
    assert listed == [(MODEL, "CPUExecutionProvider"), (FP32_MODEL, "CPUExecutionProvider")]
    for name, response in responses.items():
        assert response.model == name
        assert_same_translations(response, engines[name].translate(TEXTS, served_options()), scores=True)
    scores = [[h.score for t in r.translations for h in t.hypotheses] for r in responses.values()]
    assert scores[0] != scores[1]  # int8 and fp32 score differently: each request reached the model it named
    assert error.value.code() == grpc.StatusCode.NOT_FOUND
    assert error.value.details() == f"unknown model 'en-ja'; available models: {MODEL}, {FP32_MODEL}"


def test_health_and_reflection(service: ServiceProcess) -> None:
    assert health_status(service.address) == SERVING
    assert health_status(service.address, SERVICE_NAME) == SERVING
    with grpc.insecure_channel(service.address) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        request = reflection_pb2.ServerReflectionRequest(list_services="")
        [response] = stub.ServerReflectionInfo(iter([request]), timeout=5)
    names = {s.name for s in response.list_services_response.service}
    assert names == {SERVICE_NAME, "grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection"}


def test_command_line_client(service: ServiceProcess, engines: dict[str, Engine], tmp_path: Path) -> None:
    text, picture = "A man rides a bike.", tmp_path / "att.png"
    command = [sys.executable, "-m", "service.client", "--address", service.address, text, "--attention", str(picture)]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout == engines[MODEL].translate([text], served_options())[0].best.text + "\n"
    assert picture.read_bytes().startswith(b"\x89PNG")


def test_text_too_long_for_the_model_is_cut(service: ServiceProcess, engines: dict[str, Engine]) -> None:
    """Over the model's token limit (below the server's for the tiny model): cut between words, all parts
    translated (fp32: batch-invariant, so each part as alone)."""
    text = "cat " * engines[FP32_MODEL].max_source_tokens
    with service.client() as client:
        translation = client.translate([text], model=FP32_MODEL).translations[0]
    parts = [text[s.start : s.end] for s in translation.segments]
    assert len(parts) == 2 and " ".join(parts) == text.strip()
    alone = [t.best.text for t in engines[FP32_MODEL].translate(parts, served_options())]
    assert translation.hypotheses[0].text == " ".join(alone) + " "
