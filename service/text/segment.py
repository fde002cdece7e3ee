"""Documents into sentence spans and back: lines and list markers kept, sentences found by sentencex.

A span is a [start, end) range of characters (Unicode code points) of the text. Everything outside the
spans (line breaks, blank lines, indentation, list markers, the spaces between sentences) is layout: it is
copied to the translation as it is. A line break always ends a sentence, so every line keeps its place.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from sentencex import segment as sentencex_segment

LINE = re.compile(r"[^\n\r\v\f\x1c-\x1e\x85\u2028\u2029]+")  # what str.splitlines() splits on
# A list marker or heading at the start of a line: bullets, "1." "2)" "(3)" "a)", "#", ">" and the spaces after it.
LIST_MARKER = re.compile(r"\s*(?:[-*+•‣◦▪·–—>]|#{1,6}|\(?\d{1,3}[.)]|\(?[a-z]\))(?=\s)\s*")
# Safe points to cut an over-long sentence: after punctuation inside it, then between words, then anywhere.
CLAUSE_END = re.compile(r"[,;:)\]}»”…–—](?=\s)")
WORD_END = re.compile(r"\S(?=\s)")


@dataclass(frozen=True)
class Span:
    """Characters [start, end) of a text."""

    start: int
    end: int


def sentence_spans(text: str, language: str) -> list[Span]:
    """The sentences of `text` in order, each without the whitespace and list marker around it."""
    spans: list[Span] = []
    for line in LINE.finditer(text):
        marker = LIST_MARKER.match(line.group())
        start = line.start() + (marker.end() if marker else 0)
        spans.extend(_sentences(text, start, line.end(), language))
    return spans


def _sentences(text: str, start: int, end: int, language: str) -> Iterator[Span]:
    """The sentences of text[start:end] (one line) as sentencex splits it."""
    position = start
    for sentence in sentencex_segment(language, text[start:end]):
        if text.startswith(sentence, position):
            yield from _stripped(text, position, position + len(sentence))
            position += len(sentence)
    yield from _stripped(text, position, end)  # anything the segmenter did not give back as it was


def _stripped(text: str, start: int, end: int) -> Iterator[Span]:
    """The span without its surrounding whitespace; nothing if it is all whitespace."""
    piece = text[start:end]
    if piece.strip():
        yield Span(start + len(piece) - len(piece.lstrip()), end - len(piece) + len(piece.rstrip()))


def fit_spans(text: str, spans: Sequence[Span], fits: Callable[[str], bool]) -> list[Span]:
    """`spans` with each sentence that does not fit cut into parts that do: at punctuation, else between
    words, else between characters. Every character of a span stays in one of its parts."""
    return [part for span in spans for part in _fit(text, span, fits, 0)]


def _fit(text: str, span: Span, fits: Callable[[str], bool], level: int) -> list[Span]:
    if fits(text[span.start : span.end]):
        return [span]
    ends = [*_cut_points(text, span, level), span.end]  # ascending
    parts: list[Span] = []
    start = span.start
    while start < span.end:
        first = bisect.bisect_right(ends, start)
        last = _longest_fitting(text, start, ends, first, fits)
        if last is None:  # even the shortest piece is too long: cut it finer
            end = ends[first]
            parts.extend(_fit(text, next(_stripped(text, start, end)), fits, level + 1))
        else:
            end = ends[last]
            parts.extend(_stripped(text, start, end))
        rest = text[end : span.end]
        start = end + len(rest) - len(rest.lstrip())
    return parts


def _cut_points(text: str, span: Span, level: int) -> list[int]:
    """Where a part of `span` may end, finest last: after punctuation, after a word, after any character."""
    if level < 2:
        pattern = CLAUSE_END if level == 0 else WORD_END
        return [m.end() for m in pattern.finditer(text, span.start, span.end)]
    return list(range(span.start + 1, span.end))


def _longest_fitting(text: str, start: int, ends: list[int], first: int, fits: Callable[[str], bool]) -> int | None:
    """The index (from `first` on) of the furthest end whose piece fits, or None.

    Galloping then binary search (a longer piece has no fewer tokens), so the pieces tried stay within twice
    the length of the answer. A single character always fits, so the finest cut always progresses."""

    def ok(i: int) -> bool:
        return ends[i] - start <= 1 or fits(text[start : ends[i]].strip())

    if not ok(first):
        return None
    good, step = first, 1
    while good + step < len(ends) and ok(good + step):
        good, step = good + step, step * 2
    lo, hi = good + 1, min(good + step, len(ends)) - 1
    while lo <= hi:
        middle = (lo + hi) // 2
        if ok(middle):
            good, lo = middle, middle + 1
        else:
            hi = middle - 1
    return good


def reassemble(text: str, spans: Sequence[Span], translations: Sequence[str]) -> str:
    """`text` with each span replaced by its translation and everything between the spans kept."""
    pieces, position = [], 0
    for span, translation in zip(spans, translations, strict=True):
        pieces += [text[position : span.start], translation]
        position = span.end
    pieces.append(text[position:])
    return "".join(pieces)
