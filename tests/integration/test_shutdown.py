"""How the service process ends: refusing to start on a bad model, and draining on SIGTERM."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.integration.conftest import MODEL, StartService


def corrupt(model_dir: Path) -> Path:
    """Flips one bit of a graph; returns the changed file."""
    path = model_dir / "decoder.int8.onnx"
    data = bytearray(path.read_bytes())
    data[-1] ^= 1
    path.write_bytes(bytes(data))
    return path


def remove(model_dir: Path) -> Path:
    """Deletes the tokenizer; returns the removed file."""
    path = model_dir / "tokenizer.model"
    path.unlink()
    return path


@pytest.mark.parametrize(
    ("damage", "problem"), [(corrupt, "does not match its sha256"), (remove, "is missing from the model directory")]
)
def test_a_bad_model_stops_the_start(
    start_service: StartService,
    tiny_model_dir: Path,
    tmp_path: Path,
    damage: Callable[[Path], Path],
    problem: str,
) -> None:
    root = tmp_path / "models"
    damaged = damage(Path(shutil.copytree(tiny_model_dir, root / MODEL)))
    service = start_service(root)
    assert service.wait(60) == 2
    log = service.log()
    assert f"error: {damaged} {problem}" in log
    assert "Traceback" not in log
