"""The tiny model's fp32 engine behind a real server, for the document tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from service.decoding.engine import Engine
from tests.service.harness import ServerThread


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/text" in str(item.path) and item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(180))


@pytest.fixture(scope="session")
def fp32_engine(tiny_model_dir: Path) -> Engine:
    """fp32: batch-invariant, so a sentence translates the same whatever it shares a batch with."""
    return Engine.load(tiny_model_dir, intra_op_threads=1, variant="fp32")


@pytest.fixture(scope="session")
def tiny_server(fp32_engine: Engine) -> Iterator[ServerThread]:
    running = ServerThread({"en-fr": fp32_engine})
    yield running
    running.close()
