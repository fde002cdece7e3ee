"""The repeat guard of the search: a decoder that loops is stopped from repeating any n-gram."""

from __future__ import annotations

import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.decoding.search import beam_search, block_repeated_ngrams, greedy_search

EOS, BOS, VOCAB = 3, 2, 10
CYCLE = [5, 6, 7]


class LoopingDecoder:
    """Prefers the next token of the cycle 5 6 7 5 6 7 ... over everything, eos last: output that loops."""

    def step(self, tokens: np.ndarray, position: int) -> tuple[np.ndarray, None]:
        log_probs = np.full((len(tokens), VOCAB), np.log(0.01), dtype=np.float32)
        log_probs[:, EOS] = np.log(0.001)
        follows = np.array([CYCLE[(CYCLE.index(t) + 1) % 3] if t in CYCLE else CYCLE[0] for t in tokens])
        log_probs[np.arange(len(tokens)), follows] = np.log(0.9)
        return log_probs, None

    def select(self, rows: np.ndarray) -> None:
        pass


def repeats(tokens: list[int], size: int) -> bool:
    grams = [tuple(tokens[i : i + size]) for i in range(len(tokens) - size + 1)]
    return len(grams) != len(set(grams))


@pytest.mark.parametrize("size", [2, 3, 4])
def test_greedy_output_repeats_no_ngram_of_the_guards_size(size: int) -> None:
    (looping,) = greedy_search(LoopingDecoder(), np.array([30]), BOS, EOS)
    assert repeats(looping.token_ids, size)
    (guarded,) = greedy_search(LoopingDecoder(), np.array([30]), BOS, EOS, no_repeat_ngram_size=size)
    assert not repeats(guarded.token_ids, size)
    assert guarded.token_ids[:size] == looping.token_ids[:size]  # nothing changes before a repeat


@pytest.mark.parametrize("size", [2, 3])
def test_beam_hypotheses_repeat_no_ngram_of_the_guards_size(size: int) -> None:
    (hypotheses,) = beam_search(LoopingDecoder(), np.array([25]), BOS, EOS, beam_size=3, n_best=3)
    assert any(repeats(h.token_ids, size) for h in hypotheses)
    (guarded,) = beam_search(
        LoopingDecoder(), np.array([25]), BOS, EOS, beam_size=3, n_best=3, no_repeat_ngram_size=size
    )
    assert not any(repeats(h.token_ids, size) for h in guarded)


def test_blocking_marks_exactly_the_tokens_that_would_repeat() -> None:
    history = np.array([[5, 6, 5, 7, 5], [1, 2, 3, 4, 5]])
    log_probs = np.zeros((2, VOCAB))
    block_repeated_ngrams(log_probs, history, 2)
    assert np.flatnonzero(np.isinf(log_probs[0])).tolist() == [6, 7]  # "5 6" and "5 7" were seen
    assert not np.isinf(log_probs[1]).any()


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 4), st.integers(0, 12), st.integers(2, 5), st.randoms(use_true_random=False))
def test_blocking_matches_its_definition(rows: int, steps: int, size: int, rng: random.Random) -> None:
    """Token t is blocked in a row exactly when (last size-1 tokens, t) already occurs in that row's history."""
    history = np.array([[rng.randrange(4) for _ in range(steps)] for _ in range(rows)], dtype=np.int64)
    log_probs = np.zeros((rows, VOCAB))
    block_repeated_ngrams(log_probs, history.reshape(rows, steps), size)
    for row, tokens in enumerate(history.tolist()):
        seen = {tuple(tokens[i : i + size]) for i in range(len(tokens) - size + 1)}
        suffix = tuple(tokens[len(tokens) - size + 1 :]) if len(tokens) >= size - 1 else None
        expected = {t for t in range(VOCAB) if suffix is not None and (*suffix, t) in seen}
        assert set(np.flatnonzero(np.isinf(log_probs[row])).tolist()) == expected
