"""Fixtures of the reliability suite, and the summary of its counters at the end of the run."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from service.decoding.engine import Engine
from tests.reliability.calls import Reference
from tests.reliability.tally import TALLY
from tests.service.harness import ServerThread


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/reliability" in str(item.path) and item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(180))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if TALLY.sent:
        counts, failures = TALLY.lines()
        terminalreporter.write_sep("=", "reliability summary")
        terminalreporter.write_line(counts)
        terminalreporter.write_line(failures, red=bool(TALLY.lost or TALLY.wrong or TALLY.crashes))


@pytest.fixture(scope="session")
def engine(tiny_model_dir: Path) -> Engine:
    """The tiny model's fp32 variant: int8 quantizes activations per batch, so its answers depend on the batch."""
    return Engine.load(tiny_model_dir, intra_op_threads=1, variant="fp32")


@pytest.fixture(scope="session")
def reference(engine: Engine) -> Reference:
    return Reference(engine)


@pytest.fixture(scope="session")
def server(engine: Engine) -> Iterator[ServerThread]:
    """A server over the real engine with the default settings, shared by the tests that do not change them."""
    running = ServerThread({"en-fr": engine})
    yield running
    running.close()
