"""The engine and the PyTorch model over the suite's tiny model (tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
import sentencepiece as spm

from model.checkpoint import load_checkpoint, model_from_checkpoint
from model.model import Transformer
from model.tokenizer import load_tokenizer
from service.decoding.engine import Engine


@pytest.fixture(scope="session", params=["inplace", "concat"])
def engine(tiny_model_dir: Path, request: pytest.FixtureRequest) -> Engine:
    """The fp32 engine with each decoder interface: the in-place step graph and the concatenating fallback."""
    return Engine.load(tiny_model_dir, intra_op_threads=1, variant="fp32", interface=request.param)


@pytest.fixture(scope="session")
def torch_model(tiny_checkpoint: Path) -> Transformer:
    return model_from_checkpoint(load_checkpoint(tiny_checkpoint))


@pytest.fixture(scope="session")
def tokenizer(tiny_checkpoint: Path) -> spm.SentencePieceProcessor:
    return load_tokenizer(load_checkpoint(tiny_checkpoint)["tokenizer_model"])
