"""A tiny trained model exported once per session with the command line, and the engine over it."""

from __future__ import annotations

from pathlib import Path

import pytest
import sentencepiece as spm
import torch

from model.checkpoint import load_checkpoint, model_from_checkpoint
from model.export import main as export_main
from model.model import Transformer
from model.tokenizer import load_tokenizer
from service.engine import Engine
from tests.engine.tiny import train_tiny_checkpoint

torch.set_num_threads(1)  # two shared cores: competing thread pools make torch many times slower


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_tiny_checkpoint(tmp_path_factory.mktemp("checkpoint"))


@pytest.fixture(scope="session")
def model_dir(checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    output = tmp_path_factory.mktemp("models") / "en-fr"
    args = ["--checkpoint", str(checkpoint), "--output", str(output), "--version", "1", "--variants", "fp32,int8,fp16"]
    assert export_main(args) == 0
    return output


@pytest.fixture(scope="session")
def engine(model_dir: Path) -> Engine:
    return Engine.load(model_dir, intra_op_threads=1, variant="fp32")


@pytest.fixture(scope="session")
def torch_model(checkpoint: Path) -> Transformer:
    return model_from_checkpoint(load_checkpoint(checkpoint))


@pytest.fixture(scope="session")
def tokenizer(checkpoint: Path) -> spm.SentencePieceProcessor:
    return load_tokenizer(load_checkpoint(checkpoint)["tokenizer_model"])
