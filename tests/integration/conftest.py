"""Fixtures of the end-to-end tests: a models root with two real models, and service processes serving it."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from model.export import main as export_main
from service.decoding.engine import Engine
from tests.integration.calls import FP32_MODEL, MODEL
from tests.support.service_process import ServiceProcess, StartService


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/integration" in str(item.path) and item.get_closest_marker("timeout") is None:
            # The test itself; fixtures bound their own waits (the first one trains and exports the tiny model).
            item.add_marker(pytest.mark.timeout(120, func_only=True))


@pytest.fixture(scope="session")
def models_root(tiny_model_dir: Path, tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A models root holding MODEL and FP32_MODEL."""
    root = tmp_path_factory.mktemp("models-root")
    shutil.copytree(tiny_model_dir, root / MODEL)
    args = ["--checkpoint", str(tiny_checkpoint), "--output", str(root / FP32_MODEL), "--version", "1"]
    assert export_main([*args, "--name", FP32_MODEL, "--variants", "fp32"]) == 0
    return root


@pytest.fixture(scope="session")
def engines(models_root: Path) -> dict[str, Engine]:
    """The served models loaded in the test process as the service loads them (same variants)."""
    return {folder.name: Engine.load(folder, intra_op_threads=1) for folder in sorted(models_root.iterdir())}


@pytest.fixture(scope="session")
def service(models_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    """One service process serving both models, shared by the tests that do not stop it; SERVING."""
    process = ServiceProcess(models_root, tmp_path_factory.mktemp("service") / "service.log")
    try:
        process.wait_serving()
        yield process
    finally:
        process.stop()


@pytest.fixture
def start_service(tmp_path: Path) -> Iterator[StartService]:
    """Launches service processes (ServiceProcess arguments but the log file); stops them after the test."""
    started: list[ServiceProcess] = []

    def start(models_root: Path, **settings: Any) -> ServiceProcess:
        process = ServiceProcess(models_root, tmp_path / f"service-{len(started)}.log", **settings)
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()
