"""A cohort: sentences that decode together, one decoder call per step.

The cache design. Sentences that join at the same step are encoded together into a new cohort (their
cross-attention keys/values and an empty self-attention cache). Between steps its rows leave (finished,
cancelled or expired sentences, dropped beams) and are reordered (beams) through `RowCache.select`.

Cohorts merge where the cache allows it: the in-place cache (service/decoding/inplace.py) gives every row
its own position and cache mask, so a new cohort's rows are appended to a running one's buffer (`absorb`)
and step with it from then on: one decoder call per step for all of them. The concatenating graph takes one
position for all rows, and the in-place buffer one beam width: cohorts that cannot merge keep their own
buffers, and the scheduler interleaves their steps.

Within a cohort, sentences with different decode options share every decoder call: each row's step is
independent of the other rows, so each group of sentences that joined together with equal options is
searched by its own rule on its own contiguous block of rows. Only the source padding is shared (the
memory is padded to the longest source of the cohort and masked), which leaves fp32 results as they are
alone.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import groupby
from typing import Protocol

import numpy as np

from service.decoding.search import IncrementalDecoder, SearchResult, StepSearch
from service.types import DecodeOptions, StageTimings, Translation


class RowCache(IncrementalDecoder, Protocol):
    """A decoder's key/value cache over rows (sentences x beams), stepped one position at a time."""

    def absorb(self, other: object, position: int) -> bool:
        """Append `other`'s rows (not stepped yet) to join at `position` of this cache; False (nothing
        changes) when they cannot share its calls."""
        ...


class StepBackend(Protocol):
    """What the scheduler needs of a model (service.decoding.engine.Engine) to run it step by step."""

    def source_ids(self, text: str) -> list[int]: ...
    def merges(self, beam_size: int) -> bool:
        """Whether cohorts of this beam size get caches that can merge (then they share one buffer)."""
        ...

    def encode(self, sources: Sequence[Sequence[int]], beam_size: np.ndarray, return_attention: bool) -> RowCache: ...
    def new_search(self, sources: list[list[int]], options: DecodeOptions) -> StepSearch: ...
    def max_lengths(self, source_tokens: Sequence[int], options: DecodeOptions) -> np.ndarray: ...
    def translation(self, source: list[int], found: list[SearchResult], options: DecodeOptions) -> Translation: ...


class Owner(Protocol):
    """The request a sentence belongs to, as the cohort sees it."""

    @property
    def gone(self) -> bool:
        """True once the request needs no more results (cancelled, expired or failed)."""
        ...


@dataclass(eq=False)
class Sentence:
    """One sentence of a request on its way through the scheduler."""

    owner: Owner
    index: int  # in its request
    source: list[int]
    options: DecodeOptions
    tokenize_s: float = 0.0
    enqueued: float = field(default_factory=time.monotonic)

    @property
    def rows(self) -> int:
        return self.options.beam_size


@dataclass
class _Group:
    """Sentences of one decode option that joined together, searched together on a contiguous block of rows."""

    options: DecodeOptions
    sentences: list[Sentence]
    search: StepSearch
    live: set[int]  # indices of the sentences still searching
    source_width: int  # source positions of the attention rows it was encoded with
    encode_s: float = 0.0
    started: float = field(default_factory=time.perf_counter)


class Cohort:
    """Sentences encoded together and stepped together; see the module docstring."""

    def __init__(self, backend: StepBackend, sentences: Sequence[Sentence]) -> None:
        started = time.perf_counter()
        ordered = sorted(sentences, key=lambda s: _option_key(s.options))  # stable: each group keeps its order
        self._backend = backend
        self._cache = backend.encode(
            [s.source for s in ordered],
            np.array([s.rows for s in ordered]),
            any(s.options.return_attention for s in ordered),
        )
        width = max(len(s.source) for s in ordered)
        groups = [list(g) for _, g in groupby(ordered, key=lambda s: _option_key(s.options))]
        self._groups = [
            _Group(g[0].options, g, backend.new_search([s.source for s in g], g[0].options), set(range(len(g))), width)
            for g in groups
        ]
        self.position = 0
        self.start_rows = self.rows
        self.beam_size = max(s.rows for s in sentences)
        self.alone = False  # set when it could not merge into another cohort: it steps by itself
        self.served = 0.0  # decoder rows per sentence it has had (steps x beams), set and counted by the scheduler
        encode_s = time.perf_counter() - started
        for group in self._groups:
            group.encode_s = encode_s

    @property
    def rows(self) -> int:
        return sum(g.search.rows for g in self._groups)

    @property
    def fresh(self) -> bool:
        """Encoded, not stepped yet: its rows may join another cohort."""
        return self.position == 0

    def absorb(self, other: Cohort) -> bool:
        """Takes a fresh cohort's sentences into this one, to step with it from now on; False if the caches
        cannot merge (the other then stays a cohort of its own)."""
        if not other.fresh or not self._cache.absorb(other._cache, self.position):
            return False
        self._groups.extend(other._groups)
        self.start_rows += other.start_rows
        return True

    def sentences(self) -> list[Sentence]:
        """The sentences still searching."""
        return [g.sentences[i] for g in self._groups for i in sorted(g.live)]

    def drop_gone(self) -> list[Sentence]:
        """Removes the rows of sentences whose request is gone; returns those sentences."""
        gone = [[i for i in g.live if g.sentences[i].owner.gone] for g in self._groups]
        if not any(gone):
            return []
        counts = [g.search.rows for g in self._groups]
        dropped: list[Sentence] = []
        kept: list[np.ndarray | None] = []
        for group, leaving in zip(self._groups, gone, strict=True):
            group.live.difference_update(leaving)
            dropped.extend(group.sentences[i] for i in leaving)
            kept.append(group.search.drop(np.array(leaving)) if leaving else None)
        if self.rows:
            self._cache.select(_cache_rows(counts, kept))
        self._groups = [g for g in self._groups if g.search.rows]  # a finished search takes no more steps
        return dropped

    def step(self) -> list[tuple[Sentence, Translation]]:
        """One decoder call over all rows; returns the sentences that finished, with their translations."""
        groups = self._groups
        tokens = groups[0].search.tokens if len(groups) == 1 else np.concatenate([g.search.tokens for g in groups])
        log_probs, cross = self._cache.step(tokens, self.position)
        self.position += 1
        counts = [g.search.rows for g in groups]
        finished: list[tuple[Sentence, Translation]] = []
        kept: list[np.ndarray | None] = []
        offset = 0
        for group, rows in zip(groups, counts, strict=True):
            block = slice(offset, offset + rows)
            attention = None if cross is None else cross[block, : group.source_width]
            outcome = group.search.advance(log_probs[block], attention)
            kept.append(outcome.rows)
            offset += rows
            for i, found in outcome.finished.items():
                group.live.discard(i)
                finished.append((group.sentences[i], self._translation(group, group.sentences[i], found)))
        if any(rows is not None for rows in kept) and self.rows:
            self._cache.select(_cache_rows(counts, kept))
        if finished:
            self._groups = [g for g in groups if g.search.rows]
        return finished

    def _translation(self, group: _Group, sentence: Sentence, found: list[SearchResult]) -> Translation:
        translation = self._backend.translation(sentence.source, found, sentence.options)
        decode = time.perf_counter() - group.started
        translation.timings = StageTimings(tokenize=sentence.tokenize_s, encode=group.encode_s, decode=decode)
        return translation


def _cache_rows(counts: list[int], kept: list[np.ndarray | None]) -> np.ndarray:
    """The cache rows to keep: each group's block of rows (`counts`, in order) reduced to the rows its search keeps
    (indices into the block; None: all, unchanged)."""
    blocks, offset = [], 0
    for count, rows in zip(counts, kept, strict=True):
        blocks.append(offset + (np.arange(count) if rows is None else rows))
        offset += count
    return np.concatenate(blocks)


def _option_key(options: DecodeOptions) -> tuple[object, ...]:
    """Orders (and groups) decode options; None sorts before every max_length."""
    max_length = -1 if options.max_length is None else options.max_length
    return (options.beam_size, options.n_best, options.length_penalty, max_length, options.return_attention)
