"""Greedy and beam search over any incremental decoder, in numpy.

The same search drives the onnxruntime engine and the PyTorch reference, so their outputs can only
differ through the model's numbers, never through the search.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np


class IncrementalDecoder(Protocol):
    """A model's decoder for one encoded batch, fed one token per row per step (rows: sentences x beams)."""

    def step(self, tokens: np.ndarray, position: int) -> tuple[np.ndarray, np.ndarray | None]:
        """Feed `tokens` (N,) at `position`; returns log-probabilities (N, V) and cross-attention (N, S) or None."""
        ...

    def select(self, rows: np.ndarray) -> None:
        """Keep only these rows of the cache, in this order (beams reordered, finished rows dropped)."""
        ...


@dataclass
class SearchResult:
    """One finished hypothesis: target ids without bos/eos, its normalized score, and optional attention."""

    token_ids: list[int]
    score: float
    attention: np.ndarray | None  # (len(token_ids), S)


def length_normalized(total_log_prob: float | np.ndarray, length: int, length_penalty: float) -> float | np.ndarray:
    """Score of a hypothesis: total log-probability / length^alpha (alpha = 0 leaves it unnormalized)."""
    return total_log_prob / (max(length, 1) ** length_penalty)


def block_repeated_ngrams(log_probs: np.ndarray, history: np.ndarray, size: int) -> None:
    """Sets to -inf, in place, the log-probability of every token that would repeat an n-gram of `size` (>= 2)
    tokens already in its row's `history` (rows, steps so far): the guard against output that loops."""
    steps, prefix = history.shape[1], size - 1  # prefix: the n-gram's tokens before its last one
    if size < 2 or steps < size:
        return
    starts = steps - prefix  # n-grams starting at 0 .. starts - 1 end before the last token
    same = history[:, :starts] == history[:, starts, None]  # shifted slices: a few small numpy calls
    for k in range(1, prefix):
        same &= history[:, k : starts + k] == history[:, starts + k, None]
    rows, starts_found = np.nonzero(same)
    log_probs[rows, history[rows, starts_found + prefix]] = -np.inf


def greedy_search(
    decoder: IncrementalDecoder,
    max_lengths: np.ndarray,
    bos_id: int,
    eos_id: int,
    length_penalty: float = 1.0,
    return_attention: bool = False,
    no_repeat_ngram_size: int = 0,
) -> list[SearchResult]:
    """Take the most probable token at every step; finished sentences leave the batch at once.

    A step costs a few whole-batch numpy operations and no Python loop over rows: at batch 1 the search's
    own time is a noticeable share of a step."""
    batch, steps = len(max_lengths), int(max_lengths.max())
    alive = np.arange(batch)  # sentence index of each decoder row
    rows = np.arange(batch)  # decoder row numbers, for picking each row's chosen log-probability
    limits = np.asarray(max_lengths)  # steps allowed to each live row
    tokens = np.full(batch, bos_id, dtype=np.int64)
    emitted = np.zeros((batch, steps), dtype=np.int64)
    lengths = np.zeros(batch, dtype=np.int64)  # steps taken by each sentence, set when it leaves
    attention: list[list[np.ndarray]] = [[] for _ in range(batch)]
    totals = np.zeros(batch)
    for position in range(steps):
        log_probs, cross = decoder.step(tokens, position)
        if no_repeat_ngram_size:
            block_repeated_ngrams(log_probs, emitted[alive, :position], no_repeat_ngram_size)
        tokens = log_probs.argmax(axis=-1)
        totals[alive] += log_probs[rows, tokens]
        emitted[alive, position] = tokens
        if return_attention and cross is not None:
            for row, sentence in enumerate(alive):
                attention[sentence].append(cross[row])
        keep = (tokens != eos_id) & (limits > position + 1)
        if not keep.all():
            lengths[alive[~keep]] = position + 1
            if not keep.any():
                break
            kept = np.flatnonzero(keep)
            decoder.select(kept)
            alive, tokens, limits, rows = alive[kept], tokens[kept], limits[kept], rows[: len(kept)]
    return [
        _finish(
            emitted[i, : lengths[i]].tolist(),
            float(totals[i]),
            attention[i] if return_attention else None,
            eos_id,
            length_penalty,
        )
        for i in range(batch)
    ]


def beam_search(
    decoder: IncrementalDecoder,
    max_lengths: np.ndarray,
    bos_id: int,
    eos_id: int,
    beam_size: int,
    n_best: int = 1,
    length_penalty: float = 1.0,
    return_attention: bool = False,
    no_repeat_ngram_size: int = 0,
) -> list[list[SearchResult]]:
    """Keep the `beam_size` best prefixes per sentence; a sentence ends once it has `beam_size` finished
    hypotheses (or reaches its maximum length) and returns its `n_best` best, best first.

    The decoder must hold `len(max_lengths) * beam_size` rows, sentence-major (beams of a sentence adjacent).
    """
    batch, k = len(max_lengths), beam_size
    finished: list[list[SearchResult]] = [[] for _ in range(batch)]
    alive = np.arange(batch)  # sentences still searching
    scores = np.tile(np.r_[0.0, np.full(k - 1, -np.inf)], (batch, 1))  # (b, K); first step expands beam 0
    history = np.zeros((batch * k, 0), dtype=np.int64)  # tokens so far of each row
    attn_history: np.ndarray | None = None  # (rows, steps, S)
    tokens = np.full(batch * k, bos_id, dtype=np.int64)
    for position in range(int(max_lengths.max())):
        log_probs, cross = decoder.step(tokens, position)
        if no_repeat_ngram_size:
            block_repeated_ngrams(log_probs, history, no_repeat_ngram_size)
        # A sentence's 2K best continuations are among the 2K best tokens of each of its K rows: rank those.
        per_row = min(2 * k, log_probs.shape[-1])
        row_tokens = np.argpartition(log_probs, -per_row, axis=1)[:, -per_row:]  # (b*K, 2K)
        row_scores = scores.reshape(-1, 1) + log_probs[np.arange(len(row_tokens))[:, None], row_tokens]
        candidates = row_scores.reshape(len(alive), k * per_row)  # (b, K*2K)
        sentence = np.arange(len(alive))[:, None]  # (b, 1): indexes each sentence's own candidates
        top = np.argsort(-candidates, axis=1)[:, : 2 * k]  # (b, 2K) best first
        top_scores = candidates[sentence, top]
        source_row = sentence * k + top // per_row  # decoder row of each candidate
        top_tokens = row_tokens.reshape(len(alive), -1)[sentence, top]
        if return_attention and cross is not None:
            steps = cross[:, None, :]
            attn_history = steps if attn_history is None else np.concatenate([attn_history, steps], axis=1)
        ends = top_tokens == eos_id
        for b, j in zip(*np.nonzero(ends[:, :k]), strict=True):  # an eos among the K best finishes a hypothesis
            row = source_row[b, j]
            finished[alive[b]].append(
                _make_result(history[row], top_scores[b, j], attn_history, row, position + 1, length_penalty)
            )
        order = np.argsort(ends, axis=1, kind="stable")[:, :k]  # the K best candidates that are not eos
        next_rows = source_row[sentence, order]  # (b, K)
        scores = top_scores[sentence, order]
        tokens = top_tokens[sentence, order].reshape(-1)
        history = np.concatenate([history[next_rows.reshape(-1)], tokens[:, None]], axis=1)
        if attn_history is not None:
            attn_history = attn_history[next_rows.reshape(-1)]
        at_limit = position + 1 >= max_lengths[alive]
        for b in np.flatnonzero(at_limit):  # out of room: the live beams end here, unfinished
            for j in range(k):
                row = int(b) * k + j
                finished[alive[b]].append(
                    _make_result(history[row], scores[b, j], attn_history, row, position + 1, length_penalty)
                )
        done = at_limit | np.array([len(finished[s]) >= k for s in alive])
        rows = next_rows.reshape(-1)
        if done.any():
            keep = np.flatnonzero(~done)
            if len(keep) == 0:
                break
            keep_rows = (keep[:, None] * k + np.arange(k)).reshape(-1)
            rows, alive, scores = rows[keep_rows], alive[keep], scores[keep]
            history, tokens = history[keep_rows], tokens[keep_rows]
            if attn_history is not None:
                attn_history = attn_history[keep_rows]
        decoder.select(rows)
    return [sorted(hyps, key=lambda h: -h.score)[:n_best] for hyps in finished]


def _make_result(
    prefix: np.ndarray,
    total: float,
    attn_history: np.ndarray | None,
    row: int,
    length: int,
    length_penalty: float,
) -> SearchResult:
    """A hypothesis from a row's prefix; `length` counts the eos when the hypothesis ends with one."""
    attention = None if attn_history is None else attn_history[row, : len(prefix)]
    return SearchResult([int(t) for t in prefix], float(length_normalized(total, length, length_penalty)), attention)


def _finish(
    emitted: list[int], total: float, attention: list[np.ndarray] | None, eos_id: int, length_penalty: float
) -> SearchResult:
    """A greedy hypothesis: strip the eos (it still counts in the length) and stack its attention rows."""
    length = len(emitted)
    ids = emitted[:-1] if emitted and emitted[-1] == eos_id else emitted
    stacked = np.stack(attention)[: len(ids)] if attention else None  # (0, S) when eos came first
    return SearchResult(ids, float(length_normalized(total, length, length_penalty)), stacked)
