"""`python -m service` as a child process on a loopback port: for signals, restarts and start-up failures."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.reliability.calls import SERVING, channel

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class ServiceProcess:
    """The server serving `models_root` on 127.0.0.1:`port`, its output in `log`; killed on exit if still running.

    `settings` are more server settings ({"auth_tokens": "a,b"} sets MT_AUTH_TOKENS); `credentials` are a
    client's for a server with TLS.
    """

    def __init__(
        self,
        models_root: Path,
        log: Path,
        port: int | None = None,
        credentials: grpc.ChannelCredentials | None = None,
        settings: Mapping[str, str] | None = None,
    ) -> None:
        self.port = port or free_port()
        self.log = log
        self.credentials = credentials
        env = {k: v for k, v in os.environ.items() if not k.startswith("MT_")}
        env |= {
            "MT_MODELS_ROOT": str(models_root),
            "MT_HOST": "127.0.0.1",
            "MT_GRPC_PORT": str(self.port),
            "MT_METRICS_PORT": "0",
            "MT_INTRA_OP_THREADS": "1",
            **{f"MT_{name.upper()}": value for name, value in (settings or {}).items()},
        }
        with log.open("wb") as out:
            command = [sys.executable, "-m", "service"]
            self.process = subprocess.Popen(command, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def output(self) -> str:
        return self.log.read_text()

    async def serving(self, timeout: float = 90) -> None:
        """Waits until health says SERVING; fails if the process ends first."""
        end = time.monotonic() + timeout
        async with channel(self.address, self.credentials) as connection:
            check = health_pb2_grpc.HealthStub(connection).Check  # type: ignore[attr-defined]  # incomplete stubs
            while True:
                assert self.process.poll() is None, (
                    f"the server exited with {self.process.returncode}:\n{self.output()}"
                )
                assert time.monotonic() < end, f"the server is not serving after {timeout} s:\n{self.output()}"
                try:
                    if (await check(health_pb2.HealthCheckRequest(), timeout=1)).status == SERVING:
                        return
                except grpc.aio.AioRpcError:
                    pass
                await asyncio.sleep(0.1)

    def signal(self, number: signal.Signals) -> None:
        self.process.send_signal(number)

    def wait(self, timeout: float = 60) -> int:
        return self.process.wait(timeout)

    def __enter__(self) -> ServiceProcess:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
