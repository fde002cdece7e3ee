"""Shared fixtures of the service tests; every test here is bounded by a timeout."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

import pytest

from service.decoding.backend import TranslationBackend
from tests.service.fakes import ReversingBackend
from tests.service.harness import ServerThread


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/service" in str(item.path) and item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(60))


@pytest.fixture
def start_server() -> Iterator[Callable[..., ServerThread]]:
    """Starts servers (ServerThread arguments) and stops them after the test."""
    servers: list[ServerThread] = []

    def start(backends: Mapping[str, TranslationBackend] | None = None, **kwargs: Any) -> ServerThread:
        server = ServerThread(backends or {"en-fr": ReversingBackend()}, **kwargs)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()
