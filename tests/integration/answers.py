"""What a response of the service must hold, given the engine's translations of the same texts."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from service.api.translation.v1 import translation_pb2 as pb
from service.types import Translation


def best_texts(response: pb.TranslateResponse) -> list[str]:
    return [t.hypotheses[0].text for t in response.translations]


def assert_same_translations(
    response: pb.TranslateResponse, expected: Sequence[Translation], scores: bool = False, attention: bool = False
) -> None:
    """The response carries the engine's hypotheses, and its scores and attention when they were asked for."""
    assert len(response.translations) == len(expected)
    for got, want in zip(response.translations, expected, strict=True):
        assert [h.text for h in got.hypotheses] == [h.text for h in want.hypotheses]
        assert [list(h.tokens) for h in got.hypotheses] == [h.tokens for h in want.hypotheses]
        if scores:
            assert [h.score for h in got.hypotheses] == pytest.approx([h.score for h in want.hypotheses], abs=1e-5)
        if attention:
            assert list(got.source_tokens) == want.source_tokens
            for hypothesis, reference in zip(got.hypotheses, want.hypotheses, strict=True):
                assert_attention(hypothesis, got.source_tokens, reference.attention)


def assert_attention(hypothesis: pb.Hypothesis, source_tokens: Sequence[str], expected: np.ndarray | None) -> None:
    """A target x source matrix with rows summing to 1, labelled with the tokens, equal to the engine's."""
    attention = hypothesis.attention
    assert (attention.rows, attention.cols) == (len(hypothesis.tokens), len(source_tokens))
    assert list(attention.target_tokens) == list(hypothesis.tokens)
    assert list(attention.source_tokens) == list(source_tokens)
    weights = np.asarray(attention.weights, dtype=np.float32).reshape(attention.rows, attention.cols)
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, atol=1e-4)
    assert expected is not None
    np.testing.assert_allclose(weights, expected, atol=1e-6)
