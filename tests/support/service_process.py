"""The real service as a child process (`python -m service`) on loopback ports: for end-to-end calls, metrics,
signals, restarts and start-up failures."""

from __future__ import annotations

import signal
import urllib.request
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

import grpc
from grpc_health.v1 import health_pb2
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from bench.server import free_ports, start_service, stop_service, wait_serving
from service.client import TranslatorClient

NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
START_TIMEOUT_S = 90.0  # imports and model loading, on two cores shared with other work


class ServiceProcess:
    """`python -m service` serving `models_root` on 127.0.0.1; its output goes to `log_file`.

    The gRPC port is `grpc_port` if given (a restart on the same port), else a free one; the metrics and HTTP
    ports are free ones. `credentials` are a client's for a service with TLS. `settings` become `MT_*` variables
    (grace_period_s=5 -> MT_GRACE_PERIOD_S=5); MT_* variables of the test's own environment are not passed on.
    Killed at the end of a `with` block if still running.
    """

    def __init__(
        self,
        models_root: Path,
        log_file: Path,
        *,
        grpc_port: int | None = None,
        credentials: grpc.ChannelCredentials | None = None,
        **settings: Any,
    ) -> None:
        picked_grpc_port, self.metrics_port, self.http_port = free_ports(3)
        self.grpc_port = grpc_port or picked_grpc_port
        self.credentials = credentials
        self.log_file = log_file
        wanted = {
            "models_root": models_root,
            "host": "127.0.0.1",
            "grpc_port": self.grpc_port,
            "metrics_port": self.metrics_port,
            "http_port": self.http_port,
            "intra_op_threads": 1,
            **settings,
        }
        with log_file.open("wb") as log:
            self.process = start_service({f"MT_{name.upper()}": str(value) for name, value in wanted.items()}, log)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def output(self) -> str:
        """What the process has written so far."""
        return self.log_file.read_text(errors="replace")

    def wait_serving(self, timeout: float = START_TIMEOUT_S) -> None:
        """Polls the health service until it says SERVING; fails if the process exits or takes too long."""
        wait_serving(self.process, self.address, timeout, self.output, self.credentials)

    def client(self, **kwargs: Any) -> TranslatorClient:
        return TranslatorClient(self.address, **kwargs)

    def metrics_text(self) -> str:
        """The service's /metrics page."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as page:
            text: str = page.read().decode()
            return text

    def samples(self) -> list[Sample]:
        return [s for family in text_string_to_metric_families(self.metrics_text()) for s in family.samples]

    def sample_sum(self, name: str, **labels: str) -> float:
        """The sum of the samples `name` whose labels include `labels`."""
        return sum(s.value for s in self.samples() if s.name == name and labels.items() <= s.labels.items())

    def signal(self, number: signal.Signals) -> None:
        """Sends signal `number` (SIGTERM: the service drains and exits)."""
        self.process.send_signal(number)

    def wait(self, timeout: float = 60) -> int:
        """The exit status, once the process has ended within `timeout` s."""
        return self.process.wait(timeout)

    def stop(self, timeout: float = 30) -> None:
        """SIGTERM, then SIGKILL if it is still running after `timeout` s."""
        stop_service(self.process, timeout)

    def kill(self) -> None:
        """SIGKILL if it is still running, and waits for the end."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def __enter__(self) -> ServiceProcess:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.kill()


StartService = Callable[..., ServiceProcess]
