"""Health states through start-up and shutdown, graceful drain, and server reflection."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from service.api.translation.v1 import translation_pb2 as pb
from service.api.translation.v1 import translation_pb2_grpc as pb_grpc
from service.config import ConfigError, Settings
from service.decoding.engine import Engine
from service.server import SERVICE_NAME, load_backends
from tests.service.fakes import ReversingBackend
from tests.service.harness import ServerThread, wait_for

Start = Callable[..., ServerThread]
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def health(server: ServerThread, service: str) -> int:
    stub = health_pb2_grpc.HealthStub(server.channel())
    status: int = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5).status
    return status


@pytest.mark.parametrize("service", ["", SERVICE_NAME])
def test_serving_only_after_warm_up(start_server: Start, service: str) -> None:
    backend = ReversingBackend()
    server = start_server({"en-fr": backend}, warm=False)
    assert health(server, service) == NOT_SERVING
    server.call(server.server.warm_up())
    assert health(server, service) == SERVING
    assert backend.batches == [["Hello world."]]


def test_graceful_drain(start_server: Start) -> None:
    """What SIGTERM triggers: NOT_SERVING, new work refused, accepted work finished."""
    backend = ReversingBackend()
    server = start_server({"en-fr": backend})
    backend.gate.clear()
    stub = pb_grpc.TranslatorStub(server.channel())
    running = stub.Translate.future(pb.TranslateRequest(texts=["running call"]), timeout=10)
    wait_for(lambda: ["running call"] in backend.batches)
    queued = stub.Translate.future(pb.TranslateRequest(texts=["queued call"]), timeout=10)
    wait_for(lambda: server.depth() == 1)

    stopping = asyncio.run_coroutine_threadsafe(server.server.stop(), server.loop)
    server.stopped = True
    wait_for(lambda: health(server, "") == NOT_SERVING)
    assert health(server, SERVICE_NAME) == NOT_SERVING
    with pytest.raises(grpc.RpcError) as error:
        stub.Translate(pb.TranslateRequest(texts=["new call"]), timeout=10)
    assert error.value.code() == grpc.StatusCode.UNAVAILABLE
    assert not stopping.done()

    backend.gate.set()
    assert running.result().translations[0].hypotheses[0].text == "call running"
    assert queued.result().translations[0].hypotheses[0].text == "call queued"
    stopping.result(timeout=10)
    with pytest.raises(grpc.RpcError):
        health(server, "")  # the port is closed


def test_reflection_lists_the_services(start_server: Start) -> None:
    server = start_server()
    stub = reflection_pb2_grpc.ServerReflectionStub(server.channel())
    request = reflection_pb2.ServerReflectionRequest(list_services="")
    [response] = list(stub.ServerReflectionInfo(iter([request]), timeout=5))
    names = {s.name for s in response.list_services_response.service}
    assert {"translation.v1.Translator", "grpc.health.v1.Health"} <= names


def test_an_empty_models_root_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "not-a-model").mkdir()
    with pytest.raises(ConfigError, match="no model folder"):
        load_backends(Settings(models_root=tmp_path))


@pytest.mark.parametrize(("setting", "interface"), [("auto", "auto"), ("concat", "concat"), ("inplace", "inplace")])
def test_decoder_interface_setting(tiny_model_dir: Path, setting: str, interface: str) -> None:
    """MT_DECODER_INTERFACE picks the decoder graphs of every model; auto: both where the model has the in-place one."""
    settings = Settings(models_root=tiny_model_dir.parent, decoder_interface=setting, intra_op_threads=1)
    engine = load_backends(settings)["en-fr"]
    assert isinstance(engine, Engine) and engine.interface == interface
