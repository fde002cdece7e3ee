"""Edge cases of the shared search that the engine meets."""

from __future__ import annotations

import numpy as np

from service.search import beam_search, greedy_search

EOS, VOCAB, SOURCE = 3, 8, 5


class EosFirst:
    """A decoder whose most probable token is always eos."""

    def __init__(self, rows: int):
        self.rows = rows

    def step(self, tokens: np.ndarray, position: int) -> tuple[np.ndarray, np.ndarray]:
        log_probs = np.log(np.full((len(tokens), VOCAB), 0.5 / (VOCAB - 1)))
        log_probs[:, EOS] = np.log(0.5)
        return log_probs, np.full((len(tokens), SOURCE), 1 / SOURCE)

    def select(self, rows: np.ndarray) -> None:
        self.rows = len(rows)


def test_greedy_hypothesis_of_no_tokens_has_an_empty_attention_matrix() -> None:
    (result,) = greedy_search(EosFirst(1), np.array([5]), 2, EOS, return_attention=True)
    assert result.token_ids == []
    assert result.attention is not None and result.attention.shape == (0, SOURCE)


def test_beam_hypothesis_of_no_tokens_has_an_empty_attention_matrix() -> None:
    (results,) = beam_search(EosFirst(2), np.array([5]), 2, EOS, beam_size=2, return_attention=True)
    assert results[0].token_ids == []
    assert results[0].attention is not None and results[0].attention.shape == (0, SOURCE)
