"""How the service process ends: refusing to start on a bad model, and draining on SIGTERM."""

from __future__ import annotations

import shutil
import signal
import time
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest

from bench.server import SERVING, health_status
from service.api.translation.v1 import translation_pb2 as pb
from service.api.translation.v1 import translation_pb2_grpc as pb_grpc
from service.decoding.engine import Engine
from tests.integration.calls import FP32_MODEL, MODEL, best_texts, served_options
from tests.service.harness import wait_for
from tests.support.service_process import NOT_SERVING, ServiceProcess, StartService
from tests.support.tiny import source_sentences

CALLS = 300  # one sentence per batch (MT_MAX_BATCH_SIZE=1): several seconds of work for the tiny model
GRACE_S = 20.0
OPTIONS = served_options(beam_size=4)


def corrupt(model_dir: Path) -> Path:
    """Flips one bit of a graph; returns the changed file."""
    path = model_dir / "decoder.int8.onnx"
    data = bytearray(path.read_bytes())
    data[-1] ^= 1
    path.write_bytes(bytes(data))
    return path


def remove(model_dir: Path) -> Path:
    """Deletes the tokenizer; returns the removed file."""
    path = model_dir / "tokenizer.model"
    path.unlink()
    return path


@pytest.mark.parametrize(
    ("damage", "problem"), [(corrupt, "does not match its sha256"), (remove, "is missing from the model directory")]
)
def test_a_bad_model_stops_the_start(
    start_service: StartService,
    tiny_model_dir: Path,
    tmp_path: Path,
    damage: Callable[[Path], Path],
    problem: str,
) -> None:
    root = tmp_path / "models"
    damaged = damage(Path(shutil.copytree(tiny_model_dir, root / MODEL)))
    service = start_service(root)
    assert service.wait(60) == 2
    log = service.output()
    assert f"error: {damaged} {problem}" in log
    assert "Traceback" not in log


def test_sigterm_under_load_loses_no_accepted_request(
    start_service: StartService, models_root: Path, engines: dict[str, Engine]
) -> None:
    """Every call the service accepted before SIGTERM is answered correctly; calls during the drain are refused
    with UNAVAILABLE while health says NOT_SERVING; the process exits 0 within the grace period."""
    service = start_service(models_root, grace_period_s=GRACE_S, max_batch_size=1)  # calls still running at SIGTERM
    texts = source_sentences(CALLS, seed=11)
    expected = [t.best.text for t in engines[FP32_MODEL].translate(texts, OPTIONS)]
    service.wait_serving()
    with grpc.insecure_channel(service.address) as channel:
        stub = pb_grpc.TranslatorStub(channel)

        def call(text: str) -> grpc.Future:
            request = pb.TranslateRequest(texts=[text], model=FP32_MODEL, beam_size=OPTIONS.beam_size)
            return stub.Translate.future(request, timeout=2 * GRACE_S)

        calls = [call(text) for text in texts]
        wait_for(lambda: all_accepted_some_answered(service, CALLS), timeout=60, interval=0.01)
        running = sum(not c.done() for c in calls)
        signalled = time.monotonic()
        service.signal(signal.SIGTERM)
        health: list[int] = []
        late: list[grpc.Future] = []
        while (status := health_or_none(service.address)) is not None:
            health.append(status)
            if status == NOT_SERVING and not late:
                late.append(call(texts[0]))
            assert time.monotonic() - signalled < GRACE_S, "the gRPC port is still open after the grace period"
        assert service.wait(GRACE_S) == 0
        stopped_in = time.monotonic() - signalled
        answers = [best_texts(c.result())[0] for c in calls]
        refused = [c.code() for c in late]
    assert running > 0 and stopped_in < GRACE_S
    assert answers == expected
    assert NOT_SERVING in health and SERVING not in health[health.index(NOT_SERVING) :]
    assert refused == [grpc.StatusCode.UNAVAILABLE]


def all_accepted_some_answered(service: ServiceProcess, calls: int) -> bool:
    """The service holds or has answered every one of `calls` Translate calls, and has answered one at least
    (both read from one scrape: calls end between two)."""
    samples = [s for s in service.samples() if s.labels.get("method") == "Translate"]
    answered = sum(s.value for s in samples if s.name == "mt_requests_total")
    running = sum(s.value for s in samples if s.name == "mt_inflight_requests")
    return answered >= 1 and answered + running == calls


def health_or_none(address: str) -> int | None:
    """The health status, or None once the port no longer answers (UNAVAILABLE), or closed while this check was
    in flight (CANCELLED: the server ends calls it has not handled when its port closes, grpc/grpc#41785)."""
    try:
        return health_status(address, timeout=2)
    except grpc.RpcError as error:
        if error.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED):
            return None
        raise
