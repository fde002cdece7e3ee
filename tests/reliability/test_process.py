"""The server as a process: SIGTERM under load, SIGKILL and restart, and a damaged model at start."""

from __future__ import annotations

import asyncio
import json
import random
import shutil
import signal
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest

from bench.server import free_ports
from service.api.translation.v1 import translation_pb2 as pb
from service.api.translation.v1 import translation_pb2_grpc as pb_grpc
from tests.reliability.calls import TEXTS, assert_serving, attempt, channel, code, until
from tests.support.service_process import ServiceProcess

OK = grpc.StatusCode.OK
RETRYING = [
    (
        "grpc.service_config",
        json.dumps(
            {
                "methodConfig": [
                    {
                        "name": [{"service": "translation.v1.Translator"}],
                        "waitForReady": True,
                        "retryPolicy": {
                            "maxAttempts": 5,
                            "initialBackoff": "0.1s",
                            "maxBackoff": "1s",
                            "backoffMultiplier": 2,
                            "retryableStatusCodes": ["UNAVAILABLE"],
                        },
                    }
                ]
            }
        ),
    ),
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 500),
]


class Load:
    """Clients sending requests one after another until `stop()`, or until one is not answered OK."""

    def __init__(self, address: str, clients: int, options: list[tuple[str, object]] | None = None) -> None:
        self.ends: list[tuple[grpc.StatusCode | None, bool]] = []  # code, and if the call was in flight at `mark`
        self.marked = False
        self._stopping = False
        self._tasks = [asyncio.ensure_future(self._client(address, n, options or [])) for n in range(clients)]

    async def _client(self, address: str, number: int, options: list[tuple[str, object]]) -> None:
        rng = random.Random(number)
        async with channel(address, options=options) as connection:
            stub = pb_grpc.TranslatorStub(connection)
            while not self._stopping:
                marked_before = self.marked
                request = pb.TranslateRequest(texts=rng.choices(TEXTS, k=8), beam_size=2)
                status = code(await attempt(stub.Translate(request)))
                self.ends.append((status, self.marked and not marked_before))
                if status != OK:
                    return

    def answered(self) -> int:
        return sum(status == OK for status, _ in self.ends)

    def mark(self) -> None:
        """Marks the moment of a fault: `ends` tells which calls were in flight across it."""
        self.marked = True

    async def stop(self) -> None:
        """Lets each client finish its call in flight, and waits for them."""
        self._stopping = True
        await self.ended()

    async def ended(self) -> None:
        """Waits until every client has stopped by itself."""
        await asyncio.gather(*self._tasks)


def test_sigterm_under_load(tiny_model_dir: Path, tmp_path: Path) -> None:
    """Accepted requests complete, later ones are refused UNAVAILABLE, and the process exits 0."""

    async def scenario(service: ServiceProcess) -> Load:
        await asyncio.to_thread(service.wait_serving)
        load = Load(service.address, clients=16)
        await until(lambda: load.answered() >= 20, timeout=60)
        service.signal(signal.SIGTERM)
        load.mark()
        await load.ended()  # each client sends until it is refused
        return load

    with ServiceProcess(tiny_model_dir.parent, tmp_path / "server.log") as service:
        load = asyncio.run(scenario(service))
        assert service.wait() == 0, service.output()
    assert {status for status, _ in load.ends} == {OK, grpc.StatusCode.UNAVAILABLE}
    assert any(status == OK and across for status, across in load.ends)  # in flight at the signal, answered
    assert "stopped" in service.output()


def test_a_retrying_client_rides_out_a_kill_and_restart(tiny_model_dir: Path, tmp_path: Path) -> None:
    """After SIGKILL, a new server on the same port; calls in flight and calls sent meanwhile all succeed."""
    [port] = free_ports(1)

    async def scenario(first: ServiceProcess) -> Load:
        await asyncio.to_thread(first.wait_serving)
        load = Load(first.address, clients=4, options=RETRYING)
        await until(lambda: load.answered() >= 20, timeout=60)
        first.signal(signal.SIGKILL)
        load.mark()
        assert await asyncio.to_thread(first.wait) == -signal.SIGKILL
        with ServiceProcess(tiny_model_dir.parent, tmp_path / "second.log", grpc_port=port) as second:
            await asyncio.to_thread(second.wait_serving)
            answered = load.answered()
            await until(lambda: load.answered() >= answered + 20, timeout=60)
            await load.stop()
            await assert_serving(second.address)
            second.signal(signal.SIGTERM)
            assert await asyncio.to_thread(second.wait) == 0
        return load

    with ServiceProcess(tiny_model_dir.parent, tmp_path / "first.log", grpc_port=port) as first:
        load = asyncio.run(scenario(first))
    assert {status for status, _ in load.ends} == {OK}
    assert any(across for _, across in load.ends)  # some calls were in flight when the server died


def tamper(model: Path) -> None:
    data = bytearray((model / "encoder.onnx").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (model / "encoder.onnx").write_bytes(bytes(data))


def remove_tokenizer(model: Path) -> None:
    (model / "tokenizer.model").unlink()


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (tamper, "encoder.onnx does not match its sha256 in manifest.json"),
        (remove_tokenizer, "tokenizer.model is missing"),
    ],
)
def test_a_damaged_model_stops_the_start(
    tiny_model_dir: Path, tmp_path: Path, damage: Callable[[Path], None], message: str
) -> None:
    root = tmp_path / "models"
    damage(Path(shutil.copytree(tiny_model_dir, root / "en-fr")))
    with ServiceProcess(root, tmp_path / "server.log") as service:
        status = service.wait()
    output = service.output()
    assert status == 2, output
    assert message in output and "Traceback" not in output
