"""Greedy and beam search over any incremental decoder, in numpy.

The same search drives the onnxruntime engine, the step scheduler (service/scheduling) and the PyTorch
reference, so their outputs can only differ through the model's numbers, never through the search.

Each search is a step-wise object over the sentences of one decode rule (`GreedySearch`, `BeamSearch`):
it says which tokens to feed, takes one step's log-probabilities, returns the cache rows to keep and the
sentences that just finished, and lets sentences leave early (`drop`). `greedy_search` and `beam_search`
drive one such object over a whole decoder batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np


@dataclass
class Candidates:
    """A step's K best tokens of each row, best first, as a decoder with top-k in its graph returns them
    instead of every word's log-probability. K is a few more than twice the beam, so the search still finds
    its best tokens when the repeat guard removes some of them."""

    ids: np.ndarray  # (N, K)
    log_probs: np.ndarray  # (N, K)

    def __getitem__(self, rows: slice) -> Candidates:
        """The candidates of these rows."""
        return Candidates(self.ids[rows], self.log_probs[rows])


StepScores = np.ndarray | Candidates  # log-probabilities (N, V) of every word, or each row's top candidates


class IncrementalDecoder(Protocol):
    """A model's decoder for one encoded batch, fed one token per row per step (rows: sentences x beams)."""

    def step(self, tokens: np.ndarray, position: int) -> tuple[StepScores, np.ndarray | None]:
        """Feed `tokens` (N,) at `position`; returns log-probabilities (N, V) or candidates, and cross-attention
        (N, S) or None."""
        ...

    def select(self, rows: np.ndarray) -> None:
        """Keep only these rows of the cache, in this order (beams reordered, finished rows dropped)."""
        ...


class RepeatGuard(Protocol):
    """Tokens a search must not choose because they would repeat what a row already wrote (see repeat_guard.py)."""

    def blocked(self, history: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(rows, tokens): each token blocked in a row of `history` (rows, tokens so far)."""
        ...


class OnePositionForAllRows:
    """A decoder whose graph takes one position for all its rows: rows that start later cannot join its calls."""

    def absorb(self, other: object, position: int) -> bool:
        """Never (see service/scheduling/cohort.py's RowCache)."""
        return False


@dataclass
class SearchResult:
    """One finished hypothesis: target ids without bos/eos, its normalized score, and optional attention."""

    token_ids: list[int]
    score: float
    attention: np.ndarray | None  # (len(token_ids), S)
    truncated: bool = False  # cut at the maximum length, without an eos


@dataclass
class StepOutcome:
    """What one step decided: the rows to keep (indices into the step's rows, in their new order; None: all,
    unchanged) and the sentences that finished (sentence index -> n-best results, best first)."""

    rows: np.ndarray | None
    finished: dict[int, list[SearchResult]] = field(default_factory=dict)


class StepSearch(Protocol):
    """A search over some sentences that one decoder call per step advances (see the module docstring)."""

    @property
    def rows(self) -> int:
        """Live decoder rows of this search (sentences x beams)."""
        ...

    @property
    def tokens(self) -> np.ndarray:
        """The token to feed each live row at the next step."""
        ...

    def advance(self, log_probs: StepScores, cross: np.ndarray | None) -> StepOutcome:
        """Consume one step's log-probabilities (rows, V) or candidates and cross-attention (rows, S) of this
        search's rows."""
        ...

    def drop(self, sentences: np.ndarray) -> np.ndarray:
        """Remove these sentences (indices) unfinished; returns the rows to keep, as `StepOutcome.rows`."""
        ...


def length_normalized(total_log_prob: float | np.ndarray, length: int, length_penalty: float) -> float | np.ndarray:
    """Score of a hypothesis: total log-probability / length^alpha (alpha = 0 leaves it unnormalized)."""
    return total_log_prob / (max(length, 1) ** length_penalty)


class GreedySearch:
    """Take the most probable token at every step; finished sentences leave the batch at once.

    Neither bos nor the ids in `never` (such as pad) is ever chosen: see `forbid`.

    A step costs a few whole-batch numpy operations and no Python loop over rows: at batch 1 the search's
    own time is a noticeable share of a step."""

    def __init__(
        self,
        max_lengths: np.ndarray,
        bos_id: int,
        eos_id: int,
        length_penalty: float = 1.0,
        return_attention: bool = False,
        never: Sequence[int] = (),
        repeat_guard: RepeatGuard | None = None,
    ) -> None:
        batch, steps = len(max_lengths), int(np.max(max_lengths))
        self._forbidden = np.array([bos_id, *never], dtype=np.int64)
        self._guard = repeat_guard
        self._eos, self._length_penalty, self._return_attention = eos_id, length_penalty, return_attention
        self._position = 0
        self._alive = np.arange(batch)  # sentence index of each decoder row
        self._limits = np.asarray(max_lengths)  # steps allowed to each live row
        self._tokens = np.full(batch, bos_id, dtype=np.int64)
        self._emitted = np.zeros((batch, steps), dtype=np.int64)
        self._attention: list[list[np.ndarray]] = [[] for _ in range(batch)]
        self._totals = np.zeros(batch)

    @property
    def rows(self) -> int:
        return len(self._alive)

    @property
    def tokens(self) -> np.ndarray:
        return self._tokens

    def advance(self, log_probs: StepScores, cross: np.ndarray | None) -> StepOutcome:
        position, alive = self._position, self._alive
        history = self._emitted[alive, :position] if self._guard is not None else None
        ids, scores = allowed_scores(log_probs, self._forbidden, history, self._guard)
        best = scores.argmax(axis=-1)
        self._totals[alive] += scores[np.arange(len(alive)), best]
        tokens = best if ids is None else ids[np.arange(len(alive)), best]
        self._emitted[alive, position] = tokens
        if self._return_attention and cross is not None:
            for row, sentence in enumerate(alive):
                self._attention[sentence].append(cross[row])
        self._position += 1
        keep = (tokens != self._eos) & (self._limits > self._position)
        self._tokens = tokens
        if keep.all():
            return StepOutcome(None)
        finished = {int(s): [self._result(int(s))] for s in alive[~keep]}
        return StepOutcome(self._keep(np.flatnonzero(keep)), finished)

    def drop(self, sentences: np.ndarray) -> np.ndarray:
        return self._keep(np.flatnonzero(~np.isin(self._alive, sentences)))

    def _keep(self, kept: np.ndarray) -> np.ndarray:
        self._alive, self._tokens, self._limits = self._alive[kept], self._tokens[kept], self._limits[kept]
        return kept

    def _result(self, sentence: int) -> SearchResult:
        """A greedy hypothesis: strip the eos (it still counts in the length) and stack its attention rows."""
        length = self._position
        emitted = self._emitted[sentence, :length].tolist()
        ids = emitted[:-1] if emitted and emitted[-1] == self._eos else emitted
        attention = self._attention[sentence] if self._return_attention else None
        stacked = np.stack(attention)[: len(ids)] if attention else None  # (0, S) when eos came first
        score = length_normalized(float(self._totals[sentence]), length, self._length_penalty)
        return SearchResult(ids, float(score), stacked, truncated=len(ids) == length)


class BeamSearch:
    """Keep the `beam_size` best prefixes per sentence; a sentence ends once it has `beam_size` finished
    hypotheses (or reaches its maximum length) and returns its `n_best` best, best first.

    Its rows are sentence-major (the `beam_size` beams of a sentence adjacent), `len(max_lengths) * beam_size`
    of them at the start. Neither bos nor the ids in `never` (such as pad) is ever chosen: see `forbid`."""

    def __init__(
        self,
        max_lengths: np.ndarray,
        bos_id: int,
        eos_id: int,
        beam_size: int,
        n_best: int = 1,
        length_penalty: float = 1.0,
        return_attention: bool = False,
        never: Sequence[int] = (),
        repeat_guard: RepeatGuard | None = None,
    ) -> None:
        batch, k = len(max_lengths), beam_size
        self._forbidden = np.array([bos_id, *never], dtype=np.int64)
        self._guard = repeat_guard
        self._k, self._n_best, self._eos = k, n_best, eos_id
        self._length_penalty, self._return_attention = length_penalty, return_attention
        self._max_lengths = np.asarray(max_lengths)
        self._position = 0
        self._finished: list[list[SearchResult]] = [[] for _ in range(batch)]
        self._found = np.zeros(batch, np.int64)  # finished hypotheses of each sentence
        self._alive = np.arange(batch)  # sentences still searching
        self._scores = np.tile(np.r_[0.0, np.full(k - 1, -np.inf)], (batch, 1))  # (b, K); step 1 expands beam 0
        self._history = np.zeros((batch * k, 0), dtype=np.int64)  # tokens so far of each row
        self._attn_history: np.ndarray | None = None  # (rows, steps, S)
        self._tokens = np.full(batch * k, bos_id, dtype=np.int64)

    @property
    def rows(self) -> int:
        return len(self._alive) * self._k

    @property
    def tokens(self) -> np.ndarray:
        return self._tokens

    def advance(self, log_probs: StepScores, cross: np.ndarray | None) -> StepOutcome:
        k, alive, position = self._k, self._alive, self._position
        ids, scores = _row_candidates(*allowed_scores(log_probs, self._forbidden, self._history, self._guard), 2 * k)
        per_row = scores.shape[1]
        candidates = (self._scores.reshape(-1, 1) + scores).reshape(len(alive), k * per_row)  # (b, K*C)
        sentence = np.arange(len(alive))[:, None]  # (b, 1): indexes each sentence's own candidates
        top = np.argsort(-candidates, axis=1, kind="stable")[:, : 2 * k]  # (b, 2K) best first
        top_scores = candidates[sentence, top]
        source_row = sentence * k + top // per_row  # decoder row of each candidate
        top_tokens = ids.reshape(len(alive), -1)[sentence, top]
        if self._return_attention and cross is not None:
            steps = cross[:, None, :]
            history = self._attn_history
            self._attn_history = steps if history is None else np.concatenate([history, steps], axis=1)
        ends = top_tokens == self._eos
        if ends.any():  # the K best candidates that are not eos go on; an eos among the K best finishes a hypothesis
            for b, j in zip(*np.nonzero(ends[:, :k]), strict=True):
                row = source_row[b, j]
                self._finish(alive[b], self._history[row], top_scores[b, j], row, position + 1, truncated=False)
            order = np.argsort(ends, axis=1, kind="stable")[:, :k]
            next_rows, self._scores = source_row[sentence, order], top_scores[sentence, order]
            self._tokens = top_tokens[sentence, order].reshape(-1)
        else:
            next_rows, self._scores, self._tokens = source_row[:, :k], top_scores[:, :k], top_tokens[:, :k].reshape(-1)
        rows = next_rows.reshape(-1)
        self._history = np.concatenate([self._history[rows], self._tokens[:, None]], axis=1)
        if self._attn_history is not None:
            self._attn_history = self._attn_history[rows]
        self._position += 1
        at_limit = self._position >= self._max_lengths[alive]
        for b in np.flatnonzero(at_limit):  # out of room: the live beams end here, unfinished
            for j in range(k):
                row = int(b) * k + j
                self._finish(alive[b], self._history[row], self._scores[b, j], row, self._position, truncated=True)
        done = at_limit | (self._found[alive] >= k)
        if not done.any():
            return StepOutcome(rows)
        finished = {int(s): sorted(self._finished[s], key=lambda h: -h.score)[: self._n_best] for s in alive[done]}
        return StepOutcome(rows[self._keep(np.flatnonzero(~done))], finished)

    def drop(self, sentences: np.ndarray) -> np.ndarray:
        return self._keep(np.flatnonzero(~np.isin(self._alive, sentences)))

    def _keep(self, sentences: np.ndarray) -> np.ndarray:
        """Keep these live sentences (indices into the live ones); returns the rows they hold."""
        keep_rows = (sentences[:, None] * self._k + np.arange(self._k)).reshape(-1)
        self._alive, self._scores = self._alive[sentences], self._scores[sentences]
        self._history, self._tokens = self._history[keep_rows], self._tokens[keep_rows]
        if self._attn_history is not None:
            self._attn_history = self._attn_history[keep_rows]
        return keep_rows

    def _finish(self, sentence: int, prefix: np.ndarray, total: float, row: int, length: int, truncated: bool) -> None:
        """Record a hypothesis from a row's prefix; `length` counts the eos when it ends with one (not `truncated`)."""
        attention = None if self._attn_history is None else self._attn_history[row, : len(prefix)]
        score = float(length_normalized(total, length, self._length_penalty))
        self._finished[sentence].append(SearchResult(prefix.tolist(), score, attention, truncated))
        self._found[sentence] += 1


def allowed_scores(
    step: StepScores, forbidden: np.ndarray, history: np.ndarray | None, guard: RepeatGuard | None
) -> tuple[np.ndarray | None, np.ndarray]:
    """A step's candidate ids (None: every word, by index) and their log-probabilities with the forbidden ids and
    the tokens the repeat guard blocks (given `history`, the tokens so far of each row) at -inf; dense
    log-probabilities are changed in place."""
    blocked = guard.blocked(history) if guard is not None and history is not None else None
    if isinstance(step, Candidates):
        ids, scores = step.ids, step.log_probs
        for token in forbidden:  # a few ids: cheaper than np.isin
            scores[ids == token] = -np.inf
        if blocked is not None:
            rows, tokens = blocked
            hit_rows, hit_columns = np.nonzero(ids[rows] == tokens[:, None])
            scores[rows[hit_rows], hit_columns] = -np.inf
        return ids, scores
    forbid(step, forbidden)
    if blocked is not None:
        step[blocked] = -np.inf
    return None, step


def _row_candidates(ids: np.ndarray | None, scores: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
    """Each row's candidate ids and scores (N, C): the decoder's top-k candidates as they are, or, from every
    word's log-probabilities, the `count` best of each row (unordered: a sentence's 2K best continuations are
    among the 2K best tokens of each of its K rows)."""
    if ids is not None:
        return ids, scores
    count = min(count, scores.shape[-1])
    best = np.argpartition(scores, -count, axis=1)[:, -count:]
    return best, np.take_along_axis(scores, best, axis=1)


def forbid(log_probs: np.ndarray, ids: np.ndarray) -> None:
    """Give `ids` log-probability -inf in every row, in place: tokens that are never an output (bos, pad).

    A barely trained model can rank bos first; it is not a word, and a translation made of bos is empty."""
    log_probs[:, ids] = -np.inf


def run_search(decoder: IncrementalDecoder, search: StepSearch, sentences: int) -> list[list[SearchResult]]:
    """Step `search` over `decoder` (which holds its rows) until every sentence has finished."""
    found: dict[int, list[SearchResult]] = {}
    position = 0
    while search.rows:
        log_probs, cross = decoder.step(search.tokens, position)
        outcome = search.advance(log_probs, cross)
        found.update(outcome.finished)
        if outcome.rows is not None and search.rows:
            decoder.select(outcome.rows)
        position += 1
    return [found[i] for i in range(sentences)]


def greedy_search(
    decoder: IncrementalDecoder,
    max_lengths: np.ndarray,
    bos_id: int,
    eos_id: int,
    length_penalty: float = 1.0,
    return_attention: bool = False,
    never: Sequence[int] = (),
    repeat_guard: RepeatGuard | None = None,
) -> list[SearchResult]:
    """`GreedySearch` over a decoder holding one row per sentence; one result per sentence."""
    search = GreedySearch(max_lengths, bos_id, eos_id, length_penalty, return_attention, never, repeat_guard)
    return [found[0] for found in run_search(decoder, search, len(max_lengths))]


def beam_search(
    decoder: IncrementalDecoder,
    max_lengths: np.ndarray,
    bos_id: int,
    eos_id: int,
    beam_size: int,
    n_best: int = 1,
    length_penalty: float = 1.0,
    return_attention: bool = False,
    never: Sequence[int] = (),
    repeat_guard: RepeatGuard | None = None,
) -> list[list[SearchResult]]:
    """`BeamSearch` over a decoder holding `len(max_lengths) * beam_size` rows, sentence-major; n-best lists."""
    search = BeamSearch(
        max_lengths, bos_id, eos_id, beam_size, n_best, length_penalty, return_attention, never, repeat_guard
    )
    return run_search(decoder, search, len(max_lengths))
