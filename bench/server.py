"""The service as a child process (`python -m service`) on loopback ports: start it, wait until it says SERVING
over gRPC health, stop it with SIGTERM. Shared by the benchmarks and the end-to-end tests."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import IO

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

ROOT = Path(__file__).resolve().parents[1]
SERVING = health_pb2.HealthCheckResponse.SERVING


def free_ports(count: int) -> list[int]:
    """`count` distinct TCP ports free on 127.0.0.1 right now."""
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]


def rss_bytes(pid: int) -> int:
    """Resident memory of process `pid` (VmRSS of /proc/PID/status)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def health_status(
    address: str, service: str = "", timeout: float = 2.0, credentials: grpc.ChannelCredentials | None = None
) -> int:
    """The gRPC health status of `service` at `address` (over TLS given `credentials`); raises grpc.RpcError when
    it does not answer."""
    channel = grpc.insecure_channel(address) if credentials is None else grpc.secure_channel(address, credentials)
    with channel:
        check = health_pb2_grpc.HealthStub(channel).Check  # type: ignore[attr-defined]  # incomplete stubs
        status: int = check(health_pb2.HealthCheckRequest(service=service), timeout=timeout).status
        return status


def start_service(settings: Mapping[str, str], output: IO[bytes]) -> subprocess.Popen[bytes]:
    """`python -m service` from the project root, writing to `output`; `settings` (MT_* variables) are all its
    configuration: the MT_* variables of this process's environment are not passed on."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("MT_")} | dict(settings)
    return subprocess.Popen(
        [sys.executable, "-m", "service"], cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT
    )


def wait_serving(
    process: subprocess.Popen[bytes],
    address: str,
    timeout_s: float,
    output: Callable[[], str],
    credentials: grpc.ChannelCredentials | None = None,
) -> None:
    """Polls gRPC health at `address` until SERVING; raises RuntimeError with `output()` if the process exits
    first or `timeout_s` passes."""
    end = time.monotonic() + timeout_s
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"the service exited with status {process.returncode}:\n{output()}")
        with contextlib.suppress(grpc.RpcError):
            if health_status(address, timeout=1.0, credentials=credentials) == SERVING:
                return
        if time.monotonic() > end:
            raise RuntimeError(f"the service was not SERVING after {timeout_s:.0f} s:\n{output()}")
        time.sleep(0.1)


def stop_service(process: subprocess.Popen[bytes], timeout_s: float) -> None:
    """SIGTERM (a graceful shutdown), then SIGKILL if it has not exited within `timeout_s`."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class ServerProcess:
    """The service on free loopback ports, with `settings` (MT_* variables) over its defaults.

    Used as a context manager: entering waits until health says SERVING; leaving stops it with SIGTERM.
    """

    def __init__(self, models_root: Path, settings: Mapping[str, str], startup_timeout_s: float = 300.0):
        grpc_port, metrics_port, http_port = free_ports(3)
        self.settings = {
            "MT_MODELS_ROOT": str(Path(models_root).resolve()),
            "MT_HOST": "127.0.0.1",
            "MT_GRPC_PORT": str(grpc_port),
            "MT_METRICS_PORT": str(metrics_port),
            "MT_HTTP_PORT": str(http_port),
            **settings,
        }
        self.startup_timeout_s = startup_timeout_s
        self._log: IO[bytes] | None = None
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.settings['MT_GRPC_PORT']}"

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.settings['MT_METRICS_PORT']}/metrics"

    @property
    def pid(self) -> int:
        assert self._process is not None, "the server is not running"
        return self._process.pid

    def start(self) -> None:
        """Starts the server and waits until it serves; raises RuntimeError with its log if it does not."""
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 (closed by stop)
        self._process = start_service(self.settings, self._log)
        try:
            wait_serving(self._process, self.address, self.startup_timeout_s, self.log_tail)
        except BaseException:
            self.stop()
            raise

    def log_tail(self, chars: int = 4000) -> str:
        if self._log is None:
            return ""
        self._log.seek(0, os.SEEK_END)
        self._log.seek(max(0, self._log.tell() - chars))
        return self._log.read().decode(errors="replace")

    def stop(self) -> None:
        """SIGTERM (graceful shutdown), then SIGKILL if it has not exited within a minute."""
        if self._process is not None:
            stop_service(self._process, timeout_s=60)
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> ServerProcess:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
