"""The IO-binding decoder (service/decoding/iobinding.py) on CPU: the same results as the plain decoder.

On CUDA it keeps the caches on the GPU (tests/engine/test_cuda.py); onnxruntime binds CPU values the same way,
so every step, row selection and search is checked here against the plain decoder on the same session."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from service.decoding.engine import Engine, OnnxIncrementalDecoder
from service.decoding.iobinding import IoBoundDecoder
from service.types import DecodeOptions
from tests.support.tiny import source_sentences

SOURCES = [[5, 9, 12, 3], [7, 3], [11, 6, 8, 10, 3]]


@pytest.fixture(scope="module", params=["fp32", "fp16"])
def engines(request: pytest.FixtureRequest, tiny_model_dir: Path) -> tuple[Engine, Engine]:
    """The same variant loaded twice: with IO binding, and plain."""
    load = {"variant": request.param, "intra_op_threads": 1, "interface": "concat"}  # the graph CUDA runs
    return Engine.load(tiny_model_dir, io_binding=True, **load), Engine.load(tiny_model_dir, **load)


def test_io_binding_is_off_on_cpu_unless_asked(engines: tuple[Engine, Engine]) -> None:
    bound, plain = engines
    assert isinstance(bound.encode(SOURCES), IoBoundDecoder)
    assert isinstance(plain.encode(SOURCES), OnnxIncrementalDecoder)


@pytest.mark.parametrize("attention", [True, False])
def test_steps_and_row_selection_match_the_plain_decoder(engines: tuple[Engine, Engine], attention: bool) -> None:
    """Beams reordered within their sentence, then a sentence dropped: caches and memory follow the rows."""
    rows_per_sentence = np.array([2, 1, 3])
    decoders = [e.encode(SOURCES, rows_per_sentence, attention) for e in engines]
    tokens = np.full(6, 2)
    selections = [None, np.array([1, 0, 2, 5, 3, 4]), np.array([0, 1, 3, 4, 5]), None]
    for position, rows in enumerate(selections):
        (log_probs, cross), (expected, expected_cross) = (d.step(tokens, position) for d in decoders)
        np.testing.assert_array_equal(log_probs, expected)
        if attention:
            assert cross is not None and expected_cross is not None
            np.testing.assert_array_equal(cross, expected_cross)
        else:
            assert cross is None and expected_cross is None
        tokens = expected.argmax(axis=1)
        if rows is not None:
            for decoder in decoders:
                decoder.select(rows)
            tokens = tokens[rows]


def test_rows_dropped_before_the_first_step(engines: tuple[Engine, Engine]) -> None:
    """The continuous scheduler may drop a sentence whose request is gone before its cohort's first step."""
    decoders = [e.encode(SOURCES, 2) for e in engines]
    for decoder in decoders:
        decoder.select(np.array([2, 3, 4, 5]))
    (log_probs, _), (expected, _) = (d.step(np.full(4, 2), 0) for d in decoders)
    np.testing.assert_array_equal(log_probs, expected)


@pytest.mark.parametrize("beam_size", [1, 4])
def test_translations_match_the_plain_decoder(engines: tuple[Engine, Engine], beam_size: int) -> None:
    bound, plain = engines
    sources, options = source_sentences(24, seed=5), DecodeOptions(beam_size=beam_size, n_best=beam_size)
    for ours, theirs in zip(bound.translate(sources, options), plain.translate(sources, options), strict=True):
        assert [h.token_ids for h in ours.hypotheses] == [h.token_ids for h in theirs.hypotheses]
        assert [h.score for h in ours.hypotheses] == pytest.approx([h.score for h in theirs.hypotheses], abs=1e-6)
