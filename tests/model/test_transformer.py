"""The Transformer's masks, attention, positional encoding and cached decoding behave as the paper says."""

from __future__ import annotations

import math

import numpy as np
import torch

from model.model import Transformer, padding_mask, scaled_dot_product_attention, sinusoidal_positional_encoding
from model.reference import TorchIncrementalDecoder
from service.decoding.search import beam_search, greedy_search

BOS, EOS, PAD = 2, 3, 0


def batch(*rows: list[int], width: int | None = None) -> torch.Tensor:
    """Rows of token ids right-padded with PAD to `width` (default: the longest row)."""
    width = width or max(len(r) for r in rows)
    return torch.tensor([r + [PAD] * (width - len(r)) for r in rows])


def test_causal_mask_hides_the_future(tiny_model: Transformer) -> None:
    src = batch([5, 6, 7, EOS])
    tgt = torch.tensor([[BOS, 9, 10, 11, 12]])
    changed = tgt.clone()
    changed[0, 3] = 20  # a later target token
    before, after = tiny_model(src, tgt), tiny_model(src, changed)
    torch.testing.assert_close(before[:, :3], after[:, :3], rtol=0, atol=1e-6)
    assert not torch.allclose(before[:, 3:], after[:, 3:])


def test_source_padding_does_not_change_outputs(tiny_model: Transformer) -> None:
    tgt = torch.tensor([[BOS, 9, 10]])
    short, padded = batch([5, 6, 7, EOS]), batch([5, 6, 7, EOS], width=9)
    torch.testing.assert_close(tiny_model.encode(short), tiny_model.encode(padded)[:, :4], rtol=0, atol=1e-5)
    torch.testing.assert_close(tiny_model(short, tgt), tiny_model(padded, tgt), rtol=0, atol=1e-5)


def test_target_padding_does_not_change_outputs_at_real_positions(tiny_model: Transformer) -> None:
    src = batch([5, 6, 7, EOS])
    real, padded = batch([BOS, 9, 10]), batch([BOS, 9, 10], width=7)
    torch.testing.assert_close(tiny_model(src, real), tiny_model(src, padded)[:, :3], rtol=0, atol=1e-5)


def test_a_padded_batch_matches_its_sentences_one_by_one(tiny_model: Transformer) -> None:
    sources, targets = [[5, 6, EOS], [7, 8, 9, 10, 11, EOS]], [[BOS, 12], [BOS, 13, 14, 15]]
    together = tiny_model(batch(*sources), batch(*targets))
    for i, (s, t) in enumerate(zip(sources, targets, strict=True)):
        alone = tiny_model(batch(s), batch(t))
        torch.testing.assert_close(together[i : i + 1, : len(t)], alone, rtol=0, atol=1e-5)


def test_attention_rows_sum_to_one_and_are_zero_on_masked_keys() -> None:
    torch.manual_seed(0)
    q, k, v = torch.randn(2, 4, 5, 8), torch.randn(2, 4, 6, 8), torch.randn(2, 4, 6, 8)
    keys = batch([4, 4, 4, 4, 4, 4], [4, 4, 4])  # the second row has 3 padded keys
    _, weights = scaled_dot_product_attention(q, k, v, padding_mask(keys, PAD), scale=8**-0.5)
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 4, 5))
    assert torch.all(weights[1, :, :, 3:] == 0)
    assert torch.all(weights[0] > 0)


def test_cross_attention_ignores_source_padding(tiny_model: Transformer) -> None:
    src = batch([5, 6, EOS], [7, 8, 9, 10, EOS])
    _, cross = tiny_model.decode(batch([BOS, 9], [BOS, 9]), tiny_model.encode(src), padding_mask(src, PAD))
    for layer in cross:  # (B, H, T, S)
        torch.testing.assert_close(layer.sum(-1), torch.ones_like(layer.sum(-1)))
        assert torch.all(layer[0, :, :, 3:] == 0)


def test_positional_encoding_matches_its_formula() -> None:
    d_model, table = 16, sinusoidal_positional_encoding(50, 16)
    for pos in (0, 1, 7, 49):
        for i in range(d_model // 2):
            angle = pos / 10000 ** (2 * i / d_model)
            assert math.isclose(table[pos, 2 * i], math.sin(angle), abs_tol=1e-5)
            assert math.isclose(table[pos, 2 * i + 1], math.cos(angle), abs_tol=1e-5)


@torch.no_grad()
def test_cached_step_by_step_decoding_equals_the_full_pass(tiny_model: Transformer) -> None:
    src = batch([5, 6, 7, EOS], [8, 9, EOS])
    tgt = torch.tensor([[BOS, 10, 11, 12, 13], [BOS, 14, 15, 16, 17]])
    memory, src_mask = tiny_model.encode(src), padding_mask(src, PAD)
    full = torch.log_softmax(tiny_model.decode(tgt, memory, src_mask)[0], dim=-1)  # (B, T, V)
    memory_kv, past = tiny_model.decoder.memory_key_values(memory), None
    for t in range(tgt.size(1)):
        step, past, _ = tiny_model.decode_step(tgt[:, t : t + 1], t, memory_kv, src_mask, past)
        torch.testing.assert_close(step, full[:, t], rtol=0, atol=1e-5)


def test_beam_search_of_width_one_is_greedy_search(tiny_model: Transformer) -> None:
    src = batch([5, 6, 7, EOS], [8, 9, EOS], [10, 11, 12, 13, 14, EOS])
    max_lengths = np.array([12, 12, 12])
    greedy = greedy_search(TorchIncrementalDecoder(tiny_model, src), max_lengths, BOS, EOS)
    beam = beam_search(TorchIncrementalDecoder(tiny_model, src), max_lengths, BOS, EOS, beam_size=1)
    for g, (b,) in zip(greedy, beam, strict=True):
        assert g.token_ids == b.token_ids
        assert math.isclose(g.score, b.score, rel_tol=1e-5)
