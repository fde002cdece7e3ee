"""The engine on CUDA (onnxruntime-gpu and an NVIDIA GPU): fp16 with IO binding against fp32 on CPU.

Marked `cuda`: `make test` deselects them, `make gpu-check` runs them in its own environment. Without the CUDA
provider they skip (a machine without a GPU is expected, not a gap: CI has none).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from service.decoding.engine import Engine
from service.decoding.iobinding import CUDA, IoBoundDecoder
from service.types import DecodeOptions
from tests.support.tiny import source_sentences

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(
        CUDA not in ort.get_available_providers(),
        reason="no CUDA provider in this onnxruntime (make gpu-check runs these on an NVIDIA GPU)",
    ),
]
SOURCES = [[5, 9, 12, 3], [7, 3], [11, 6, 8, 10, 3]]


def load_cuda(model_dir: Path, variant: str | None = None) -> Engine:
    engine = Engine.load(model_dir, providers=(CUDA, "CPUExecutionProvider"), variant=variant)
    assert engine.provider == CUDA, "onnxruntime fell back to the CPU: see its log for the CUDA error"
    return engine


@pytest.fixture(scope="module")
def fp16(tiny_model_dir: Path) -> Engine:
    return load_cuda(tiny_model_dir)


def test_cuda_runs_fp16_with_io_binding(fp16: Engine) -> None:
    assert fp16.variant == "fp16"
    assert isinstance(fp16.encode(SOURCES), IoBoundDecoder)


@pytest.mark.parametrize("variant", ["fp16", "fp32"])
def test_steps_on_cuda_match_fp32_on_cpu(tiny_model_dir: Path, engine: Engine, variant: str) -> None:
    """Teacher-forced steps with beams reordered and a row dropped. Compared as probabilities: fp16 logits of
    unlikely words far below zero carry absolute errors that do not matter. fp32 on CUDA may multiply in TF32."""
    cuda = load_cuda(tiny_model_dir, variant)
    tolerance = {"fp16": (0.02, 0.01), "fp32": (0.005, 0.005)}[variant]  # probabilities, attention
    decoders = [e.encode(SOURCES, np.array([2, 1, 3]), True) for e in (cuda, engine)]
    tokens = np.full(6, 2)
    for position, rows in enumerate([np.array([1, 0, 2, 5, 3, 4]), np.array([0, 1, 3, 4, 5]), None]):
        (log_probs, cross), (expected, expected_cross) = (d.step(tokens, position) for d in decoders)
        assert cross is not None and expected_cross is not None
        assert log_probs.dtype == cross.dtype == np.float32
        np.testing.assert_allclose(np.exp(log_probs), np.exp(expected), atol=tolerance[0])
        np.testing.assert_allclose(cross, expected_cross, atol=tolerance[1])
        tokens = expected.argmax(axis=1)
        if rows is not None:
            for decoder in decoders:
                decoder.select(rows)
            tokens = tokens[rows]


@pytest.mark.parametrize("beam_size", [1, 4])
def test_fp16_on_cuda_translates_like_fp32_on_cpu(fp16: Engine, engine: Engine, beam_size: int) -> None:
    """The tiny model is confident (99% of unseen sentences exact); fp16 rounding may flip a close call."""
    sources, options = source_sentences(50, seed=11), DecodeOptions(beam_size=beam_size)
    pairs = zip(fp16.translate(sources, options), engine.translate(sources, options), strict=True)
    alike = [a.best.text == b.best.text for a, b in pairs]
    assert sum(alike) >= 45, f"fp16 on CUDA and fp32 on CPU agree on {sum(alike)} of 50 sentences"
