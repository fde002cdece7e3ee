"""The onnxruntime engine against the PyTorch reference, and its behaviour as a service component."""

from __future__ import annotations

import random

import numpy as np
import pytest
import sentencepiece as spm
import torch
import torch.nn.functional as F

from model.model import Transformer, padding_mask
from model.reference import TorchIncrementalDecoder, translate_ids
from model.tokenizer import BOS_ID, EOS_ID, PAD_ID
from service.decoding.engine import Engine
from service.decoding.length_groups import length_groups
from service.decoding.search import Candidates, StepScores
from service.types import DecodeOptions
from tests.support.tiny import sentence_pairs, source_sentences


def random_texts(tokenizer: spm.SentencePieceProcessor, n: int, seed: int) -> list[str]:
    """Half sentences like the training data, half random subword soup; none without tokens."""
    rng = random.Random(seed)
    texts = source_sentences(n // 2, seed + 1000)
    while len(texts) < n:
        text = tokenizer.decode([rng.randrange(4, tokenizer.get_piece_size()) for _ in range(rng.randint(1, 12))])
        if tokenizer.encode(text):
            texts.append(text)
    return texts


def source_ids(tokenizer: spm.SentencePieceProcessor, texts: list[str]) -> list[list[int]]:
    return [[*tokenizer.encode(t), EOS_ID] for t in texts]


def assert_step_matches(step: StepScores, expected: np.ndarray) -> None:
    """A step's log-probabilities (or its top-k candidates) equal the reference's (N, V) within 1e-4; the top-k
    candidates are the reference's best tokens, bos and pad excluded, best first."""
    if not isinstance(step, Candidates):
        np.testing.assert_allclose(step, expected, atol=1e-4)
        return
    allowed = expected.copy()
    allowed[:, [BOS_ID, PAD_ID]] = -np.inf
    np.testing.assert_allclose(step.log_probs, np.take_along_axis(allowed, step.ids, axis=1), atol=1e-4)
    np.testing.assert_allclose(step.log_probs, -np.sort(-allowed, axis=1)[:, : step.ids.shape[1]], atol=1e-4)
    assert (np.diff(step.log_probs, axis=1) <= 0).all()


def padded(sources: list[list[int]]) -> torch.Tensor:
    src = torch.full((len(sources), max(map(len, sources))), PAD_ID, dtype=torch.long)
    for row, source in enumerate(sources):
        src[row, : len(source)] = torch.tensor(source)
    return src


@pytest.mark.parametrize(
    ("beam_size", "n_best", "length_penalty"), [(1, 1, 1.0), (1, 1, 0.0), (4, 3, 1.0), (3, 1, 0.6)]
)
def test_translations_match_pytorch(
    engine: Engine,
    torch_model: Transformer,
    tokenizer: spm.SentencePieceProcessor,
    beam_size: int,
    n_best: int,
    length_penalty: float,
) -> None:
    texts = random_texts(tokenizer, 40, seed=beam_size)
    options = DecodeOptions(beam_size, n_best, length_penalty, return_attention=True)
    translations = engine.translate(texts, options)
    sources = source_ids(tokenizer, texts)
    expected = translate_ids(
        torch_model, sources, BOS_ID, EOS_ID, beam_size, n_best, length_penalty, return_attention=True
    )
    for translation, source, reference in zip(translations, sources, expected, strict=True):
        assert [h.token_ids for h in translation.hypotheses] == [r.token_ids for r in reference]
        np.testing.assert_allclose([h.score for h in translation.hypotheses], [r.score for r in reference], atol=1e-4)
        for hypothesis, result in zip(translation.hypotheses, reference, strict=True):
            assert hypothesis.attention is not None and result.attention is not None
            np.testing.assert_allclose(hypothesis.attention, result.attention[:, : len(source)], atol=1e-5)


def test_trained_model_translates_and_stops(engine: Engine) -> None:
    """The tiny model learned its task: outputs vary with the input and end with eos before the length cap.

    The fixture translates 99% of unseen sentences exactly (tests/support/tiny.py): 80% is a wide margin."""
    pairs = [pair for pair in sentence_pairs(60, seed=7) if len(pair[0].split()) <= 3]
    translations = engine.translate([source for source, _ in pairs], DecodeOptions())
    correct = sum(t.best.text == target for t, (_, target) in zip(translations, pairs, strict=True))
    assert correct >= 0.8 * len(pairs)
    assert len({t.best.text for t in translations}) > 10
    caps = [engine.manifest.max_length_a * len(t.source_tokens) + engine.manifest.max_length_b for t in translations]
    assert all(len(t.best.token_ids) < cap - 1 for t, cap in zip(translations, caps, strict=True))


def test_step_log_probs_and_attention_match_pytorch(
    engine: Engine, torch_model: Transformer, tokenizer: spm.SentencePieceProcessor
) -> None:
    sources = source_ids(tokenizer, random_texts(tokenizer, 8, seed=11))  # different lengths: padding
    decoder = engine.encode(sources, return_attention=True)
    reference = TorchIncrementalDecoder(torch_model, padded(sources))
    rng = np.random.default_rng(0)
    tokens = np.full(len(sources), BOS_ID)
    real = padded(sources).numpy() != PAD_ID
    for position in range(10):
        log_probs, attention = decoder.step(tokens, position)
        expected_log_probs, expected_attention = reference.step(tokens, position)
        assert_step_matches(log_probs, expected_log_probs)
        assert attention is not None
        np.testing.assert_allclose(attention, expected_attention, atol=1e-5)
        np.testing.assert_allclose(attention.sum(axis=1), 1.0, atol=1e-5)
        assert (attention[~real] == 0).all()
        tokens = rng.integers(4, tokenizer.get_piece_size(), len(real))
        if position == 4:  # rows reordered and dropped, as beam search does
            rows = rng.permutation(len(real))[:5]
            decoder.select(rows)
            reference.select(rows)
            tokens, real = tokens[rows], real[rows]


@torch.no_grad()
def test_cached_decoding_equals_full_recomputation(
    engine: Engine, torch_model: Transformer, tokenizer: spm.SentencePieceProcessor
) -> None:
    sources = source_ids(tokenizer, random_texts(tokenizer, 6, seed=3))
    rng = np.random.default_rng(1)
    targets = np.concatenate(
        [np.full((len(sources), 1), BOS_ID), rng.integers(4, tokenizer.get_piece_size(), (len(sources), 11))], axis=1
    )
    decoder = engine.encode(sources)
    src = padded(sources)
    logits, _ = torch_model.decode(torch.from_numpy(targets), torch_model.encode(src), padding_mask(src, PAD_ID))
    expected = F.log_softmax(logits, dim=-1).numpy()
    for t in range(targets.shape[1]):
        assert_step_matches(decoder.step(targets[:, t], t)[0], expected[:, t])


@pytest.mark.parametrize("options", [DecodeOptions(return_attention=True), DecodeOptions(beam_size=4, n_best=2)])
def test_batch_equals_one_by_one(engine: Engine, tokenizer: spm.SentencePieceProcessor, options: DecodeOptions) -> None:
    texts = [*random_texts(tokenizer, 12, seed=5), ""]
    batch = engine.translate(texts, options)
    for text, together in zip(texts, batch, strict=True):
        alone = engine.translate([text], options)[0]
        assert alone.source_tokens == together.source_tokens
        assert [h.token_ids for h in alone.hypotheses] == [h.token_ids for h in together.hypotheses]
        np.testing.assert_allclose(
            [h.score for h in alone.hypotheses], [h.score for h in together.hypotheses], atol=1e-5
        )
        if options.return_attention:
            assert alone.best.attention is not None and together.best.attention is not None
            np.testing.assert_allclose(alone.best.attention, together.best.attention, atol=1e-6)


def test_texts_of_very_different_lengths_are_encoded_apart_and_translated_as_alone(engine: Engine) -> None:
    short, long = source_sentences(2, seed=11)
    texts = [short, " ".join([long] * 3), short.upper(), " ".join([long] * 2)]
    assert len(length_groups([engine.count_tokens(t) for t in texts])) > 1  # more than one encoder call
    options = DecodeOptions(return_attention=True)
    for text, together in zip(texts, engine.translate(texts, options), strict=True):
        alone = engine.translate([text], options)[0]
        assert alone.best.token_ids == together.best.token_ids
        assert alone.best.attention is not None and together.best.attention is not None
        np.testing.assert_allclose(alone.best.attention, together.best.attention, atol=1e-6)


def test_attention_matrix_covers_target_by_source_tokens(engine: Engine) -> None:
    translation = engine.translate(["big red car"], DecodeOptions(return_attention=True))[0]
    best = translation.best
    assert translation.source_tokens[-1] == "</s>"  # the eos the encoder saw is a column too
    assert best.attention is not None
    assert best.attention.shape == (len(best.tokens), len(translation.source_tokens))
    np.testing.assert_allclose(best.attention.sum(axis=1), 1.0, atol=1e-5)
    assert len(best.tokens) == len(best.token_ids)


def test_results_without_attention_unless_asked(engine: Engine) -> None:
    assert engine.translate(["cat"], DecodeOptions())[0].best.attention is None


def test_empty_text_gives_an_empty_translation(engine: Engine) -> None:
    empty, full, blank = engine.translate(["", "cat dog", "   "], DecodeOptions(beam_size=2))
    for translation in (empty, blank):
        assert translation.source_tokens == []
        assert [(h.text, h.token_ids) for h in translation.hypotheses] == [("", [])]
    assert full.best.text and full.best.token_ids
    assert engine.translate([], DecodeOptions()) == []


def test_n_best_are_sorted_and_distinct(engine: Engine) -> None:
    hypotheses = engine.translate(["small green tree"], DecodeOptions(beam_size=5, n_best=5))[0].hypotheses
    assert len(hypotheses) == 5
    assert [h.score for h in hypotheses] == sorted((h.score for h in hypotheses), reverse=True)
    assert len({tuple(h.token_ids) for h in hypotheses}) == 5


def test_max_length_caps_the_output(engine: Engine) -> None:
    for beam_size in (1, 3):
        best = engine.translate(["cat dog house red big"], DecodeOptions(beam_size, max_length=3))[0].best
        assert len(best.token_ids) <= 3


@pytest.mark.parametrize(
    "options", [DecodeOptions(beam_size=0), DecodeOptions(beam_size=2, n_best=3), DecodeOptions(max_length=0)]
)
def test_invalid_options(engine: Engine, options: DecodeOptions) -> None:
    with pytest.raises(ValueError):
        engine.translate(["cat"], options)


def test_too_long_text_is_refused(engine: Engine) -> None:
    with pytest.raises(ValueError, match="at most"):
        engine.translate(["cat " * engine.max_source_tokens], DecodeOptions())


def test_tokens_and_timings(engine: Engine) -> None:
    assert engine.tokenize("cat dog") == ["▁cat", "▁dog", "</s>"]
    assert engine.count_tokens("cat dog") == 3
    assert engine.count_tokens(" ") == 0
    assert len(engine.translate(["cat " * (engine.max_source_tokens - 1)], DecodeOptions())) == 1
    translation = engine.translate(["cat dog"], DecodeOptions())[0]
    timings = translation.timings
    assert min(timings.tokenize, timings.encode, timings.decode) > 0


def test_properties(engine: Engine) -> None:
    assert engine.provider == "CPUExecutionProvider"
    assert engine.variant == "fp32"
    assert (engine.manifest.name, engine.manifest.source_language, engine.manifest.target_language) == (
        "en-fr",
        "en",
        "fr",
    )
