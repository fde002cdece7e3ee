"""Suite-wide fixtures: a tiny trained model, exported once per session, for every test that needs a real one."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from model.export import main as export_main
from tests.support.tiny import train_tiny_checkpoint

torch.set_num_threads(1)  # two shared cores: competing thread pools make torch many times slower


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A checkpoint of a tiny model trained for seconds on a word-by-word translation task."""
    return train_tiny_checkpoint(tmp_path_factory.mktemp("checkpoint"))


@pytest.fixture(scope="session")
def tiny_model_dir(tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny checkpoint exported with the command line (fp32, int8, fp16) as model directory `en-fr`."""
    output = tmp_path_factory.mktemp("models") / "en-fr"
    args = ["--checkpoint", str(tiny_checkpoint), "--output", str(output), "--version", "1"]
    assert export_main([*args, "--variants", "fp32,int8,fp16"]) == 0
    return output
