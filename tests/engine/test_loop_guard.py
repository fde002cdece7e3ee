"""The repeat guard of the search: a decoder that loops is stopped from repeating any word n-gram, however the
words are split into pieces, cased or punctuated."""

from __future__ import annotations

import random
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.decoding.repeat_guard import PieceWords, WordRepeatGuard
from service.decoding.search import beam_search, greedy_search

PIECES = ["<pad>", "<unk>", "<s>", "</s>", "▁the", "▁cat", "▁sat", "▁The", "cat", "▁c", "at", ",", "▁", "s", "."]
PAD, UNK, BOS, EOS = 0, 1, 2, 3
VOCAB = len(PIECES)
WORDS = PieceWords.of(PIECES, special={PAD, UNK, BOS, EOS})
CYCLE = [4, 5, 6]  # "the cat sat the cat sat ..."


def guard(size: int) -> WordRepeatGuard:
    return WordRepeatGuard(WORDS, size)


def words(tokens: list[int]) -> list[str]:
    return re.findall(r"\w+", "".join(WORDS.texts[t] for t in tokens).lower())


def repeats(tokens: list[int], size: int) -> bool:
    found = words(tokens)
    grams = [tuple(found[i : i + size]) for i in range(len(found) - size + 1)]
    return len(grams) != len(set(grams))


class LoopingDecoder:
    """Prefers the next token of the cycle over everything, eos last: output that loops."""

    def step(self, tokens: np.ndarray, position: int) -> tuple[np.ndarray, None]:
        log_probs = np.full((len(tokens), VOCAB), np.log(0.01), dtype=np.float32)
        log_probs[:, EOS] = np.log(0.001)
        follows = np.array([CYCLE[(CYCLE.index(t) + 1) % 3] if t in CYCLE else CYCLE[0] for t in tokens])
        log_probs[np.arange(len(tokens)), follows] = np.log(0.9)
        return log_probs, None

    def select(self, rows: np.ndarray) -> None:
        pass


class ScriptedDecoder:
    """Prefers the script's token at each position, then eos; every other token far behind."""

    def __init__(self, script: list[int]):
        self._script = script

    def step(self, tokens: np.ndarray, position: int) -> tuple[np.ndarray, None]:
        log_probs = np.full((len(tokens), VOCAB), np.log(0.001), dtype=np.float32)
        log_probs[:, EOS] = np.log(0.1)
        if position < len(self._script):
            log_probs[:, self._script[position]] = np.log(0.8)
        return log_probs, None

    def select(self, rows: np.ndarray) -> None:
        pass


@pytest.mark.parametrize("size", [2, 3, 4])
def test_greedy_output_repeats_no_word_ngram_of_the_guards_size(size: int) -> None:
    (looping,) = greedy_search(LoopingDecoder(), np.array([30]), BOS, EOS)
    assert repeats(looping.token_ids, size)
    (guarded,) = greedy_search(LoopingDecoder(), np.array([30]), BOS, EOS, repeat_guard=guard(size))
    assert not repeats(guarded.token_ids, size)
    assert guarded.token_ids[:size] == looping.token_ids[:size]  # nothing changes before a repeat


@pytest.mark.parametrize("size", [2, 3])
def test_beam_hypotheses_repeat_no_word_ngram_of_the_guards_size(size: int) -> None:
    (hypotheses,) = beam_search(LoopingDecoder(), np.array([25]), BOS, EOS, beam_size=3, n_best=3)
    assert any(repeats(h.token_ids, size) for h in hypotheses)
    (guarded,) = beam_search(
        LoopingDecoder(), np.array([25]), BOS, EOS, beam_size=3, n_best=3, repeat_guard=guard(size)
    )
    assert not any(repeats(h.token_ids, size) for h in guarded)


@pytest.mark.parametrize(
    "script",
    [
        [4, 5, 6, 4, 9, 10],  # "the cat sat the c|at": the repeated word in other pieces
        [4, 5, 11, 7, 5],  # "the cat, The cat": past a comma, in other case
    ],
    ids=["other-pieces", "punctuation-and-case"],
)
def test_a_repeat_in_other_pieces_punctuation_or_case_is_blocked_at_its_last_piece(script: list[int]) -> None:
    (free,) = greedy_search(ScriptedDecoder(script), np.array([10]), BOS, EOS)
    assert free.token_ids == script and repeats(script, 2)
    (guarded,) = greedy_search(ScriptedDecoder(script), np.array([10]), BOS, EOS, repeat_guard=guard(2))
    assert guarded.token_ids == script[:-1]  # the piece that completes "the cat" again is blocked: eos comes next


def test_a_word_that_goes_on_past_the_repeated_one_is_not_blocked() -> None:
    """ "the cat sat the cats": the piece "▁cat" is blocked, but "cats" is not "cat"."""
    blocked_rows, blocked = guard(2).blocked(np.array([[4, 5, 6, 4, 5]]))
    assert 13 not in blocked.tolist()  # "s" after "the cat" makes "cats"
    _, blocked = guard(2).blocked(np.array([[4, 5, 6, 4]]))
    assert set(blocked.tolist()) == {5}  # "▁cat"; not "cat", which would make "thecat"


def test_a_size_below_two_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 2 words"):
        guard(1)


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 3), st.integers(0, 12), st.integers(2, 4), st.randoms(use_true_random=False))
def test_blocking_matches_its_definition(rows: int, steps: int, size: int, rng: random.Random) -> None:
    """Token t is blocked exactly when the text with t (up to the end of t's first word) ends in a word n-gram
    that it already had, ending before its last word."""
    history = np.array([[rng.randrange(4, VOCAB) for _ in range(steps)] for _ in range(rows)], dtype=np.int64)
    found_rows, found_tokens = guard(size).blocked(history.reshape(rows, steps))
    for row, tokens in enumerate(history.tolist()):
        text = "".join(PIECES[t] for t in tokens).replace("▁", " ")
        expected = set()
        for token in range(4, VOCAB):
            first = re.search(r"\w+", PIECES[token].replace("▁", " "))
            if first is None:
                continue
            so_far = re.findall(r"\w+", (text + PIECES[token].replace("▁", " ")[: first.end()]).lower())
            earlier = {tuple(so_far[i : i + size]) for i in range(len(so_far) - size)}
            if len(so_far) >= size and tuple(so_far[-size:]) in earlier:
                expected.add(token)
        assert set(found_tokens[found_rows == row].tolist()) == expected
