"""Word alignment from the cross-attention of a translation: which source word each target word came from.

Pieces are SentencePiece subwords: a piece starting with "▁" starts a word. A word's attention is the mean
over its target pieces of the summed weights of its source pieces; each target word is linked to the source
word it attends to most, and each source word no target word chose is linked to the target word that attends
to it most, so that every word of either side has a link. End-of-sentence and other special columns ("</s>")
are left out. Links are character spans, so that the links of consecutive segments can be concatenated
after shifting them (`shifted`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

WORD_START = "▁"
WORD = re.compile(r"\S+")
Span = tuple[int, int]


@dataclass(frozen=True)
class Link:
    """A target word (character span in the translation) aligned to a source word (span in the source)."""

    target: Span
    source: Span


def word_alignment(
    source_pieces: Sequence[str],
    target_pieces: Sequence[str],
    attention: np.ndarray,
    source_text: str,
    target_text: str,
) -> list[Link]:
    """Links between the words of `target_text` and `source_text`, from a target x source piece attention."""
    source_words, target_words = piece_words(source_pieces), piece_words(target_pieces)
    if not source_words or not target_words:
        return []
    weights = np.asarray(attention, dtype=np.float64)
    if weights.shape != (len(target_pieces), len(source_pieces)):
        raise ValueError(f"attention is {weights.shape}; expected {len(target_pieces)} x {len(source_pieces)} pieces")
    by_word = (
        _grouping(target_words, len(target_pieces), mean=True).T @ weights @ _grouping(source_words, len(source_pieces))
    )
    best_source, best_target = by_word.argmax(axis=1), by_word.argmax(axis=0)
    pairs = set(enumerate(best_source.tolist()))
    chosen = set(best_source.tolist())
    pairs |= {(int(best_target[s]), s) for s in range(len(source_words)) if s not in chosen}
    source_spans = text_words(source_text, len(source_words))
    target_spans = text_words(target_text, len(target_words))
    return [Link(target_spans[t], source_spans[s]) for t, s in sorted(pairs)]


def _grouping(words: list[list[int]], pieces: int, mean: bool = False) -> np.ndarray:
    """A pieces x words matrix that sums (or averages) the pieces of each word."""
    grouping = np.zeros((pieces, len(words)))
    for w, members in enumerate(words):
        grouping[members, w] = 1.0 / len(members) if mean else 1.0
    return grouping


def piece_words(pieces: Sequence[str]) -> list[list[int]]:
    """The indices of the pieces of each word, special pieces and bare "▁" pieces left out."""
    words: list[list[int]] = []
    for i, piece in enumerate(pieces):
        if piece[:1] == "<" and piece[-1:] == ">" and len(piece) > 2:  # </s>, <unk>, ...: no text of their own
            continue
        if piece.startswith(WORD_START) or not words:
            words.append([])
        words[-1].append(i)
    return [w for w in words if any(pieces[i] != WORD_START for i in w)]


def text_words(text: str, count: int) -> list[Span]:
    """The character spans of `count` words of `text`: its whitespace-separated words when there are as many,
    else (the tokenizer normalized the text) each word spread proportionally over the text's words."""
    spans = [m.span() for m in WORD.finditer(text)]
    if len(spans) == count or not spans:
        return spans if spans else [(0, len(text))] * count
    return [spans[i * len(spans) // count] for i in range(count)]


def shifted(links: Sequence[Link], target_offset: int, source_offset: int) -> list[Link]:
    """`links` of a segment as links of the text it sits in, at those offsets."""
    return [
        Link(
            (link.target[0] + target_offset, link.target[1] + target_offset),
            (link.source[0] + source_offset, link.source[1] + source_offset),
        )
        for link in links
    ]
