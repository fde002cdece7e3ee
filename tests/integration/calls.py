"""The models the end-to-end tests serve, calls to send them, and what must come back."""

from __future__ import annotations

from collections.abc import Sequence

import grpc
import numpy as np
import pytest

from service.api.translation.v1 import translation_pb2 as pb
from service.client import TranslatorClient
from service.config import Settings
from service.types import DecodeOptions, Translation

MODEL = "en-fr"  # the suite's tiny model; on CPU the service runs its int8 variant
# The same checkpoint exported again with fp32 only. fp32 answers do not depend on which sentences share a
# batch; int8 quantizes activations per batch, so tests with concurrent callers use this model.
FP32_MODEL = "en-fr-fp32"
DEFAULT_GUARD: int = Settings.model_fields["no_repeat_ngram_size"].default  # the server's repeat guard


def served_options(**fields: object) -> DecodeOptions:
    """The search the server runs for a request asking for `fields`: with its default repeat guard."""
    return DecodeOptions(no_repeat_ngram_size=DEFAULT_GUARD, **fields)  # type: ignore[arg-type]


def mixed_traffic(client: TranslatorClient) -> None:
    """Calls of every method to both models, and calls refused with INVALID_ARGUMENT and NOT_FOUND."""
    client.translate(["big red car"])
    client.translate(["small dog"], model=FP32_MODEL)
    [streamed] = client.translate_stream([pb.TranslateRequest(texts=["green tree"])])
    assert streamed.status.code == grpc.StatusCode.OK.value[0]
    client.list_models()
    with pytest.raises(grpc.RpcError) as invalid:
        client.translate(["cat"], beam_size=99)
    with pytest.raises(grpc.RpcError) as unknown:
        client.translate(["cat"], model="en-ja")
    assert (invalid.value.code(), unknown.value.code()) == (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND)


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
