"""deploy/healthcheck.py against a gRPC health server on localhost."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from concurrent import futures

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from tests.deploy.paths import DEPLOY

SCRIPT = DEPLOY / "healthcheck.py"


@pytest.fixture
def health_server() -> Iterator[tuple[int, health.HealthServicer]]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield port, servicer
    server.stop(grace=None)


def run_check(port: int) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MT_GRPC_PORT": str(port), "HEALTHCHECK_TIMEOUT_S": "2"}
    env.pop("MT_TLS_CERT_FILE", None)
    return subprocess.run([sys.executable, str(SCRIPT)], env=env, capture_output=True, text=True, timeout=30)


def test_serving_exits_0(health_server: tuple[int, health.HealthServicer]) -> None:
    port, servicer = health_server
    servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    result = run_check(port)
    assert result.returncode == 0, result.stderr
    assert "SERVING" in result.stdout


def test_not_serving_exits_1(health_server: tuple[int, health.HealthServicer]) -> None:
    port, servicer = health_server
    servicer.set("", health_pb2.HealthCheckResponse.NOT_SERVING)
    result = run_check(port)
    assert result.returncode == 1
    assert "NOT_SERVING" in result.stdout


def test_no_server_exits_1() -> None:
    # A port that is bound but not listening refuses connections.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        result = run_check(sock.getsockname()[1])
    assert result.returncode == 1
    assert "UNAVAILABLE" in result.stderr
