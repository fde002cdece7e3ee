"""The in-place decoder (service/decoding/inplace.py) against the PyTorch model: beams reordered by cache
indirection, sentences leaving, any row selection, capacity growth, sentences that join a running buffer;
and the fallback graph beside it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import sentencepiece as spm
import torch

from model.model import Transformer
from model.reference import TorchIncrementalDecoder
from model.tokenizer import BOS_ID
from service.decoding.engine import Engine, OnnxIncrementalDecoder
from service.decoding.inplace import InPlaceDecoder
from service.decoding.manifest import ModelLoadError
from service.decoding.search import Candidates
from service.types import DecodeOptions
from tests.engine.test_engine import assert_step_matches, padded, random_texts, source_ids


@pytest.fixture(scope="module")
def inplace(tiny_model_dir: Path) -> Engine:
    return Engine.load(tiny_model_dir, intra_op_threads=1, variant="fp32", interface="inplace")


def test_auto_runs_the_in_place_graph_for_beam_search_and_the_fallback_for_greedy(tiny_model_dir: Path) -> None:
    auto = Engine.load(tiny_model_dir, intra_op_threads=1, variant="fp32")
    sources = [[5, 9, 12, 3], [7, 3]]
    assert isinstance(auto.encode(sources, 1), OnnxIncrementalDecoder)
    assert isinstance(auto.encode(sources, 4), InPlaceDecoder)
    assert isinstance(auto.encode(sources, np.array([1, 2])), InPlaceDecoder)  # any beam search in the batch


def test_manifest_chooses_the_in_place_graph_and_keeps_the_fallback(tiny_model_dir: Path) -> None:
    assert Engine.load(tiny_model_dir, intra_op_threads=1, variant="fp32").interface == "auto"
    assert Engine.load(tiny_model_dir, intra_op_threads=1).interface == "auto"  # int8
    fallback = Engine.load(tiny_model_dir, intra_op_threads=1, interface="concat")
    assert fallback.interface == "concat"
    assert fallback.translate(["cat dog"], DecodeOptions(beam_size=2))[0].best.token_ids
    with pytest.raises(ModelLoadError, match="no in-place step graph"):
        Engine.load(tiny_model_dir, intra_op_threads=1, variant="fp16", interface="inplace")
    with pytest.raises(ValueError, match="decoder interface must be"):
        Engine.load(tiny_model_dir, intra_op_threads=1, interface="fused")


def test_step_graph_writes_in_place_and_ranks_in_the_graph(tiny_model_dir: Path) -> None:
    nodes = onnx.load(tiny_model_dir / "decoder.step.onnx").graph.node
    readers = {name: node.op_type for node in nodes for name in node.input if name.startswith("cache_")}
    assert set(readers.values()) == {"DecoderMaskedMultiHeadAttention"}  # nothing but the attention reads a cache
    assert [node.op_type for node in nodes].count("DecoderMaskedMultiHeadAttention") == 2  # one per layer
    assert "TopK" in [node.op_type for node in nodes]


def _beam_rows(rng: np.random.Generator, sentences: np.ndarray, width: int) -> np.ndarray:
    """Rows as beam search selects them: kept sentences, each with its beams drawn from its own rows."""
    return np.concatenate([s * width + rng.integers(0, width, width) for s in sentences])


@pytest.mark.parametrize("width", [1, 3])
def test_beams_reorder_leave_and_regroup_like_pytorch(
    inplace: Engine, torch_model: Transformer, tokenizer: spm.SentencePieceProcessor, width: int
) -> None:
    """Beam reorders (cache indirection), sentences leaving (compaction), then any row order (rows gathered),
    for more steps than the first capacity (it grows): every step matches the reference within 1e-4."""
    sources = source_ids(tokenizer, random_texts(tokenizer, 5, seed=21))
    decoder = inplace.encode(sources, width, return_attention=True)
    assert isinstance(decoder, InPlaceDecoder)
    first_capacity = decoder.mask.shape[1]
    reference = TorchIncrementalDecoder(torch_model, padded(sources).repeat_interleave(width, dim=0))
    rng = np.random.default_rng(width)
    tokens = np.full(len(sources) * width, BOS_ID)
    live = np.arange(len(sources))
    for position in range(first_capacity + 5):
        step, attention = decoder.step(tokens, position)
        expected, expected_attention = reference.step(tokens, position)
        assert_step_matches(step, expected)
        np.testing.assert_allclose(attention, expected_attention, atol=1e-5)
        np.testing.assert_allclose(attention.sum(axis=1), 1.0, atol=1e-5)
        tokens = rng.integers(4, tokenizer.get_piece_size(), len(tokens))
        if position == 6:  # a sentence leaves
            live = np.delete(np.arange(len(live)), 1)
            rows = _beam_rows(rng, live, width)
        elif position == 12:  # rows in any order, beyond sentence blocks
            rows = rng.permutation(len(tokens))[: len(tokens) - 1]
        else:
            rows = _beam_rows(rng, np.arange(len(tokens) // width), width) if position < 12 else None
        if rows is not None:
            decoder.select(rows)
            reference.select(rows)
            tokens = tokens[rows]
    assert decoder.mask.shape[1] > first_capacity


@pytest.mark.parametrize("width", [1, 2])
def test_sentences_absorbed_at_later_steps_decode_as_alone(
    inplace: Engine, torch_model: Transformer, tokenizer: spm.SentencePieceProcessor, width: int
) -> None:
    """Sentences appended to a running buffer (`absorb`) every few steps, while the oldest leave and beams
    reorder, each get the log-probabilities and attention they get alone: the scheduler's merged cohorts. The
    buffer shifts over the slots no row owns any more instead of growing."""
    sources = source_ids(tokenizer, random_texts(tokenizer, 12, seed=31))
    decoder = inplace.encode(sources[:1], width, return_attention=True)
    assert isinstance(decoder, InPlaceDecoder)
    capacity = decoder.mask.shape[1]
    live = {0: (0, TorchIncrementalDecoder(torch_model, padded(sources[:1]).repeat_interleave(width, dim=0)))}
    rng = np.random.default_rng(width)
    tokens = np.full(width, BOS_ID)
    joining = iter(range(1, len(sources)))
    for position in range(capacity + 12):
        if position % 3 == 2 and (k := next(joining, None)) is not None:  # a sentence joins
            assert decoder.absorb(inplace.encode([sources[k]], width, return_attention=True), position)
            reference = TorchIncrementalDecoder(torch_model, padded([sources[k]]).repeat_interleave(width, dim=0))
            live[k] = (position, reference)
            tokens = np.concatenate([tokens, np.full(width, BOS_ID)])
        step, attention = decoder.step(tokens, position)
        for block, (k, (joined, reference)) in enumerate(live.items()):
            rows = slice(block * width, (block + 1) * width)
            expected, expected_attention = reference.step(tokens[rows], position - joined)
            assert_step_matches(Candidates(step.ids[rows], step.log_probs[rows]), expected)
            np.testing.assert_allclose(attention[rows, : len(sources[k])], expected_attention, atol=1e-5)
        tokens = rng.integers(4, tokenizer.get_piece_size(), len(tokens))
        leaving = position % 4 == 3 and len(live) > 1  # the oldest sentence leaves
        kept = list(live)[1:] if leaving else list(live)
        beams = [rng.integers(0, width, width) for _ in kept]  # each kept sentence's beams, reordered
        for k, order in zip(kept, beams, strict=True):
            live[k][1].select(order)
        blocks = [list(live).index(k) for k in kept]
        rows = np.concatenate([b * width + order for b, order in zip(blocks, beams, strict=True)])
        decoder.select(rows)
        tokens = tokens[rows]
        live = {k: live[k] for k in kept}
    assert decoder.mask.shape[1] == capacity


def test_absorb_refuses_another_beam_width(inplace: Engine, tokenizer: spm.SentencePieceProcessor) -> None:
    sources = source_ids(tokenizer, random_texts(tokenizer, 2, seed=33))
    decoder = inplace.encode(sources[:1], 2)
    assert isinstance(decoder, InPlaceDecoder)
    assert not decoder.absorb(inplace.encode(sources[1:], 3), 0)
    decoder.step(np.full(2, BOS_ID), 0)
    assert not decoder.absorb(decoder, 1)  # rows that already stepped cannot join
    assert decoder.rows == 2


def test_repeat_guard_filters_the_candidates(inplace: Engine, tiny_model_dir: Path) -> None:
    """The repeat guard on top-k candidates gives the tokens it gives on every word's log-probability."""
    fallback = Engine.load(tiny_model_dir, intra_op_threads=1, variant="fp32", interface="concat")
    texts = ["cat cat cat cat cat cat", "dog red dog red dog red", "big big sun big big sun"]
    for options in (DecodeOptions(no_repeat_ngram_size=2), DecodeOptions(beam_size=4, no_repeat_ngram_size=2)):
        for a, b in zip(inplace.translate(texts, options), fallback.translate(texts, options), strict=True):
            assert a.best.token_ids == b.best.token_ids
            assert a.best.score == pytest.approx(b.best.score, abs=1e-4)


def test_sentences_with_different_row_counts_share_one_buffer(
    inplace: Engine, torch_model: Transformer, tokenizer: spm.SentencePieceProcessor
) -> None:
    """Rows per sentence 1, 3 and 2 (a cohort mixing greedy and beam sizes): each row gets its sentence's keys and
    values, and rows leave and reorder freely, matching the reference."""
    sources = source_ids(tokenizer, random_texts(tokenizer, 3, seed=41))
    counts = np.array([1, 3, 2])
    decoder = inplace.encode(sources, counts, return_attention=True)
    reference = TorchIncrementalDecoder(torch_model, padded(sources).repeat_interleave(torch.from_numpy(counts), dim=0))
    rng = np.random.default_rng(5)
    tokens = np.full(int(counts.sum()), BOS_ID)
    for position in range(8):
        step, attention = decoder.step(tokens, position)
        expected, expected_attention = reference.step(tokens, position)
        assert_step_matches(step, expected)
        np.testing.assert_allclose(attention, expected_attention, atol=1e-5)
        tokens = rng.integers(4, tokenizer.get_piece_size(), len(tokens))
        if position in (2, 5):
            rows = np.sort(rng.choice(len(tokens), len(tokens) - 1, replace=False))[::-1].copy()  # reversed
            decoder.select(rows)
            reference.select(rows)
            tokens = tokens[rows]
