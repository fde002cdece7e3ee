"""Shared fixtures for the model tests."""

from __future__ import annotations

import pytest
import torch

from model.model import ModelConfig, Transformer


@pytest.fixture
def tiny_model() -> Transformer:
    """A small untrained model in eval mode (no dropout), with a fixed seed."""
    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=32, d_model=32, n_heads=4, d_ff=64, n_encoder_layers=2, n_decoder_layers=2)
    return Transformer(cfg).eval()
