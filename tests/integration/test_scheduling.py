"""The step scheduler in a real service process: a cancelled, expired or stopped request's rows leave
mid-decode, and the model serves others at once."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from service.api.translation.v1 import translation_pb2 as pb
from service.api.translation.v1 import translation_pb2_grpc as pb_grpc
from service.decoding.engine import Engine
from service.types import DecodeOptions
from tests.integration.calls import FP32_MODEL, best_texts
from tests.service.harness import wait_for
from tests.support.service_process import ServiceProcess, StartService
from tests.support.tiny import source_sentences

TEXTS = source_sentences(64, seed=5)
CALLS = 2  # heavy requests at a time: 128 sentences
# One beam-8 sentence at a time: each sentence is a cohort of its own (an encoder call and ~10 steps), so the
# heavy requests take over a thousand model calls, far longer than the waits below.
SETTINGS = {"max_rows": 8, "max_request_share": 1.0, "workers": 1, "max_beam_size": 8, "max_batch_size": 1}


def heavy(stub: pb_grpc.TranslatorStub, timeout: float = 60) -> list[grpc.Future]:
    request = pb.TranslateRequest(texts=TEXTS, model=FP32_MODEL, beam_size=8)
    return [stub.Translate.future(request, timeout=timeout) for _ in range(CALLS)]


def joined(service: ServiceProcess) -> float:
    return service.sample_sum("mt_sentence_joins_total", model=FP32_MODEL)


def left(service: ServiceProcess) -> float:
    return service.sample_sum("mt_sentence_leaves_total", model=FP32_MODEL)


@pytest.fixture
def service(start_service: StartService, models_root: Path) -> Iterator[ServiceProcess]:
    process = start_service(models_root, **SETTINGS)
    process.wait_serving()
    yield process


def assert_rest_never_joined(service: ServiceProcess) -> None:
    """Every sentence that joined has left, and the requests' later sentences never joined."""
    wait_for(lambda: service.sample_sum("mt_rows_in_flight", model=FP32_MODEL) == 0, timeout=30)
    assert joined(service) == left(service) < CALLS * len(TEXTS)


def assert_serves_at_once(service: ServiceProcess, engines: dict[str, Engine]) -> None:
    text = "small red car"
    with service.client() as client:
        response = client.translate([text], model=FP32_MODEL)
    assert best_texts(response) == [engines[FP32_MODEL].translate([text], DecodeOptions())[0].best.text]


def test_a_cancelled_request_leaves_mid_decode(service: ServiceProcess, engines: dict[str, Engine]) -> None:
    with grpc.insecure_channel(service.address) as channel:
        calls = heavy(pb_grpc.TranslatorStub(channel))
        wait_for(lambda: joined(service) >= 1, timeout=30, interval=0.002)
        for call in calls:
            call.cancel()
        assert_rest_never_joined(service)
    assert_serves_at_once(service, engines)


def test_an_expired_request_leaves_mid_decode(service: ServiceProcess, engines: dict[str, Engine]) -> None:
    with grpc.insecure_channel(service.address) as channel:
        calls = heavy(pb_grpc.TranslatorStub(channel), timeout=0.1)
        assert {call.exception(timeout=30).code() for call in calls} == {grpc.StatusCode.DEADLINE_EXCEEDED}
        assert_rest_never_joined(service)
    assert_serves_at_once(service, engines)


def test_sigterm_fails_unfinished_work_unavailable_after_the_grace_period(
    start_service: StartService, models_root: Path
) -> None:
    service = start_service(models_root, grace_period_s=0.2, **SETTINGS)
    service.wait_serving()
    with grpc.insecure_channel(service.address) as channel:
        calls = heavy(pb_grpc.TranslatorStub(channel))
        wait_for(lambda: joined(service) >= 1, timeout=30, interval=0.002)
        service.signal(signal.SIGTERM)
        assert service.wait(30) == 0
        codes = [c.exception(timeout=10) for c in calls]
    assert {c.code() for c in codes if c is not None} == {grpc.StatusCode.UNAVAILABLE}
    assert any(c is not None for c in codes)
    assert "Traceback" not in service.output()
