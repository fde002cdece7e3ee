"""The compose stack run for real with podman: local base images, the service image, then
`podman-compose up` of the translator and Prometheus on free loopback ports, exactly as deploy/README.md
("Without an image registry") tells an operator to, each command timed."""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlencode

from bench.server import free_ports
from tests.deploy.paths import ROOT

BUILD_BASE_IMAGES = ROOT / "deploy" / "local" / "build-base-images.sh"
COMPOSE_FILES = ("docker-compose.yml", "docker-compose.local.yml")
SERVICES = ("translator", "prometheus")  # Grafana has no Debian package: not part of the local run
IMAGE = "localhost/mt-serve:cpu-debian"  # docker-compose.local.yml
STOP_TIMEOUT_S = 15  # stop_grace_period in docker-compose.yml; podman-compose 1.0 takes it as -t
BUILD = ("build", "translator")
UP = ("up", "-d", *SERVICES)
DOWN = ("down", "-v", "-t", str(STOP_TIMEOUT_S))
BUILD_TIMEOUT_S = 1200


class ComposeStack:
    """One podman-compose project (a unique name, free ports) of docker-compose.yml + docker-compose.local.yml."""

    def __init__(self) -> None:
        self.project = f"mt-test-{uuid.uuid4().hex[:8]}"
        self.grpc_port, self.http_port, self.metrics_port, self.prometheus_port = free_ports(4)
        self.env = {
            **os.environ,
            "BUILDAH_FORMAT": "docker",  # keeps the image's HEALTHCHECK (the OCI format has none)
            "GRAFANA_ADMIN_PASSWORD": uuid.uuid4().hex,  # required by the compose file, Grafana is not started
            "TRANSLATOR_GRPC_BIND": "127.0.0.1",
            "TRANSLATOR_GRPC_PORT": str(self.grpc_port),
            "TRANSLATOR_HTTP_PORT": str(self.http_port),
            "TRANSLATOR_METRICS_PORT": str(self.metrics_port),
            "PROMETHEUS_PORT": str(self.prometheus_port),
        }
        self.timings: dict[str, float] = {}

    @property
    def grpc_address(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def container(self, service: str) -> str:
        return f"{self.project}_{service}_1"  # podman-compose 1.0's container names

    def run(self, command: Sequence[str], timeout: float = 120, step: str | None = None, check: bool = True) -> str:
        """Runs `command` in the project root; its output, or (`check`) a failed assertion with it."""
        start = time.monotonic()
        result = subprocess.run(
            command, cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=timeout, check=False
        )
        if step:
            self.timings[step] = time.monotonic() - start
        output = (result.stdout + result.stderr)[-6000:]
        assert result.returncode == 0 or not check, f"{' '.join(command)} -> exit {result.returncode}:\n{output}"
        return result.stdout

    def compose(self, *args: str, timeout: float = 120, step: str | None = None, check: bool = True) -> str:
        return self.run(compose_command(self.project, *args), timeout, step, check)

    def build(self) -> None:
        self.run(["nice", str(BUILD_BASE_IMAGES)], BUILD_TIMEOUT_S, step="base images")
        self.compose(*BUILD, timeout=BUILD_TIMEOUT_S, step="service image")

    def up(self) -> None:
        self.compose(*UP, step="up")

    def down(self, check: bool = True) -> None:
        """`podman-compose down`: SIGTERM, then SIGKILL after STOP_TIMEOUT_S; volumes and network removed."""
        self.compose(*DOWN, timeout=120, step="down", check=check)
        # podman-compose 1.0 leaves the project's network behind.
        subprocess.run(["podman", "network", "rm", "-f", f"{self.project}_default"], capture_output=True, check=False)

    def podman(self, *args: str, timeout: float = 60) -> str:
        return self.run(["podman", *args], timeout).strip()

    def health(self, service: str) -> str:
        """Runs the container's health check once (podman's timer needs systemd) and returns its status."""
        subprocess.run(["podman", "healthcheck", "run", self.container(service)], capture_output=True, check=False)
        return self.podman("inspect", "--format", "{{.State.Health.Status}}", self.container(service))

    def prometheus(self, path: str, **params: str) -> dict[str, Any]:
        """The JSON answer of Prometheus' HTTP API on its published port to GET /api/v1/`path`."""
        url = f"http://127.0.0.1:{self.prometheus_port}/api/v1/{path}?{urlencode(params)}"
        with urllib.request.urlopen(url, timeout=10) as response:
            answer: dict[str, Any] = json.load(response)
        return answer

    def query(self, expr: str) -> list[Any]:
        answer = self.prometheus("query", query=expr)
        assert answer["status"] == "success", f"{expr}: {answer}"
        result: list[Any] = answer["data"]["result"]
        return result

    def metrics_text(self) -> str:
        """The translator's /metrics page on its published port."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as page:
            text: str = page.read().decode()
        return text


def compose_command(project: str, *args: str) -> list[str]:
    """podman-compose with the project name and both compose files, then `args`."""
    files = [option for name in COMPOSE_FILES for option in ("-f", name)]
    return ["podman-compose", "-p", project, *files, *args]
