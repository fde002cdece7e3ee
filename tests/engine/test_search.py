"""The shared search against a plain reference written from its definition, and edge cases the engine meets."""

from __future__ import annotations

import numpy as np
import pytest

from service.decoding.repeat_guard import PieceWords, WordRepeatGuard
from service.decoding.search import Candidates, beam_search, greedy_search, length_normalized

PAD, UNK, BOS, EOS = 0, 1, 2, 3
VOCAB, SOURCE = 8, 5


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


class PrefersSpecialTokens:
    """A decoder that ranks bos first, pad second, unk third, then eos."""

    def step(self, tokens: np.ndarray, position: int) -> tuple[np.ndarray, None]:
        log_probs = np.full((len(tokens), VOCAB), np.log(0.01))
        log_probs[:, [BOS, PAD, UNK, EOS]] = np.log([0.4, 0.3, 0.2, 0.1 - 0.01 * (VOCAB - 4)])
        return log_probs, None

    def select(self, rows: np.ndarray) -> None:
        pass


def test_greedy_never_emits_bos_or_pad_but_may_emit_unk() -> None:
    (result,) = greedy_search(PrefersSpecialTokens(), np.array([4]), BOS, EOS, never=(PAD,))
    assert result.token_ids == [UNK] * 4


def test_beam_never_emits_bos_or_pad() -> None:
    (results,) = beam_search(PrefersSpecialTokens(), np.array([4]), BOS, EOS, beam_size=3, n_best=3, never=(PAD,))
    emitted = {token for result in results for token in result.token_ids}
    assert UNK in emitted and not emitted & {BOS, PAD}


class MarkovDecoder:
    """A decoder whose next-token log-probabilities depend only on the sentence, the position and the row's last
    token (with the position, reordered transitions do not tie)."""

    def __init__(self, tables: np.ndarray, rows_per_sentence: int):
        self.tables = tables  # (sentences, positions, V, V): log P(next | position, last)
        self.sentence = np.repeat(np.arange(len(tables)), rows_per_sentence)  # of each row

    def step(self, tokens: np.ndarray, position: int) -> tuple[np.ndarray, None]:
        return self.tables[self.sentence, position, tokens], None

    def select(self, rows: np.ndarray) -> None:
        self.sentence = self.sentence[rows]


def reference_beam_search(
    table: np.ndarray, max_length: int, beam_size: int, length_penalty: float
) -> list[tuple[list[int], float]]:
    """One sentence, one prefix at a time: every step ranks all continuations of the live prefixes and keeps
    the 2K best; an eos among the K best finishes a hypothesis, the K best others live on; the search ends with
    K finished hypotheses or at `max_length` (live prefixes then finish unended); bos and pad are never chosen.
    All of them, best first."""
    live: list[tuple[list[int], float]] = [([], 0.0)]
    finished = []
    for length in range(1, max_length + 1):
        continuations = [
            (prefix + [token], total + table[length - 1, prefix[-1] if prefix else BOS, token])
            for prefix, total in live
            for token in range(table.shape[1])
            if token not in (BOS, PAD)
        ]
        best = sorted(continuations, key=lambda c: -c[1])[: 2 * beam_size]
        finished += [(seq[:-1], total, length) for seq, total in best[:beam_size] if seq[-1] == EOS]
        live = [(seq, total) for seq, total in best if seq[-1] != EOS][:beam_size]
        if length == max_length:
            finished += [(seq, total, length) for seq, total in live]
        if len(finished) >= beam_size:
            break
    scored = [(seq, float(length_normalized(total, length, length_penalty))) for seq, total, length in finished]
    return sorted(scored, key=lambda h: -h[1])


@pytest.mark.parametrize("beam_size", [2, 3, 5])
def test_beam_search_finds_what_the_reference_search_finds(beam_size: int) -> None:
    rng = np.random.default_rng(beam_size)
    logits = 2.5 * rng.standard_normal((6, 12, 12, 12))  # sentences, positions, last token, next token
    tables = logits - np.log(np.exp(logits).sum(axis=-1, keepdims=True))
    max_lengths = np.array([1, 3, 9, 6, 12, 4])
    found = beam_search(
        MarkovDecoder(tables, beam_size),
        max_lengths,
        BOS,
        EOS,
        beam_size,
        n_best=beam_size,
        length_penalty=0.6,
        never=(PAD,),
    )
    for sentence, results in enumerate(found):
        expected = reference_beam_search(tables[sentence], int(max_lengths[sentence]), beam_size, 0.6)[:beam_size]
        assert [r.token_ids for r in results] == [ids for ids, _ in expected]
        assert [r.score for r in results] == pytest.approx([score for _, score in expected])
    lengths = {len(r.token_ids) for results in found for r in results}
    assert len(lengths) > 3, "hypotheses of many lengths, some ended by eos, some by the limit: a strong check"


@pytest.mark.parametrize("beam_size", [1, 3])
def test_a_hypothesis_cut_at_the_maximum_length_says_so(beam_size: int) -> None:
    """`truncated` holds exactly for the hypotheses that ran out of room before an eos."""
    rng = np.random.default_rng(7)
    logits = 2.5 * rng.standard_normal((6, 12, 12, 12))
    tables = logits - np.log(np.exp(logits).sum(axis=-1, keepdims=True))
    max_lengths = np.array([1, 3, 9, 6, 12, 4])
    decoder = MarkovDecoder(tables, beam_size)
    if beam_size == 1:
        found = [[r] for r in greedy_search(decoder, max_lengths, BOS, EOS)]
    else:
        found = beam_search(decoder, max_lengths, BOS, EOS, beam_size, n_best=beam_size)
    flags = set()
    for results, limit in zip(found, max_lengths, strict=True):
        for r in results:
            assert r.truncated == (len(r.token_ids) == limit), (r, limit)
            flags.add(r.truncated)
    assert flags == {True, False}
    (eos_first,) = greedy_search(EosFirst(1), np.array([5]), BOS, EOS)
    assert not eos_first.truncated


class TopKDecoder(MarkovDecoder):
    """The same decoder returning only each row's K best allowed tokens, as a graph with top-k in it does."""

    def __init__(self, tables: np.ndarray, rows_per_sentence: int, k: int):
        super().__init__(tables, rows_per_sentence)
        self.k = k

    def step(self, tokens: np.ndarray, position: int) -> tuple[Candidates, None]:
        log_probs, _ = super().step(tokens, position)
        allowed = log_probs.copy()
        allowed[:, [BOS, PAD]] = -np.inf
        ids = np.argsort(-allowed, axis=1, kind="stable")[:, : self.k]
        return Candidates(ids, np.take_along_axis(allowed, ids, axis=1)), None


@pytest.mark.parametrize("beam_size", [1, 3])
@pytest.mark.parametrize("no_repeat_ngram_size", [0, 2])
def test_search_over_top_k_candidates_finds_what_it_finds_over_every_word(
    beam_size: int, no_repeat_ngram_size: int
) -> None:
    """With K = 2 x beam + 8 candidates per row (what the in-place graph returns), greedy and beam search pick the
    hypotheses and scores they pick from every word's log-probability, the repeat guard on or off."""
    rng = np.random.default_rng(beam_size + no_repeat_ngram_size)
    logits = 2.0 * rng.standard_normal((5, 14, 40, 40))  # a vocabulary well over K
    tables = logits - np.log(np.exp(logits).sum(axis=-1, keepdims=True))
    max_lengths = np.array([3, 14, 8, 11, 5])
    k = 2 * beam_size + 8
    dense, candidates = MarkovDecoder(tables, beam_size), TopKDecoder(tables, beam_size, k)
    pieces = ["<pad>", "<unk>", "<s>", "</s>", *[("▁", "", ",▁")[i % 3] + "abcde"[i % 5] for i in range(36)]]
    words = PieceWords.of(pieces, special={PAD, UNK, BOS, EOS})
    guard = WordRepeatGuard(words, no_repeat_ngram_size) if no_repeat_ngram_size else None
    options = {"never": (PAD,), "repeat_guard": guard}
    if beam_size == 1:
        expected = [[r] for r in greedy_search(dense, max_lengths, BOS, EOS, **options)]  # type: ignore[arg-type]
        found = [[r] for r in greedy_search(candidates, max_lengths, BOS, EOS, **options)]  # type: ignore[arg-type]
    else:
        expected = beam_search(dense, max_lengths, BOS, EOS, beam_size, beam_size, **options)  # type: ignore[arg-type]
        found = beam_search(candidates, max_lengths, BOS, EOS, beam_size, beam_size, **options)  # type: ignore[arg-type]
    for mine, theirs in zip(found, expected, strict=True):
        assert [r.token_ids for r in mine] == [r.token_ids for r in theirs]
        assert [r.score for r in mine] == pytest.approx([r.score for r in theirs])
