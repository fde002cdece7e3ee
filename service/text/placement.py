"""A block's translation as HTML: each of its tags placed around the target words its source words went to.

Pure: a `Block` (service/text/markup.py), its translation and word links (service/text/alignment.py) in,
HTML out. Every tag of the block comes out exactly once and in the same nesting: an inline element wraps
the target words from the first to the last one linked to a source word it covered (clipped to its parent,
and cut where it would overlap a sibling); one that keeps no word, and every atom (br, img, comments, code,
...), goes to a point: after the target words of the source word before it.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Sequence

from service.text.alignment import Link, shifted
from service.text.markup import Block, Tag, escape_text

# A word or a run of punctuation: "car." is two, so that a tag can end before the ".".
WORD = re.compile(r"(?P<word>\w+)|[^\w\s]+")
Placed = tuple[int, int, int]  # start and end characters in the translation, index of the tag


def render_block(block: Block, translation: str, links: Sequence[Link]) -> str:
    """The HTML of `block` translated as `translation`.

    `links` map target word spans of `translation` to source word spans of `block.text`; a block translated
    as several segments takes the concatenation of its segments' links, shifted (alignment.shifted).
    """
    lead, trail = block.text[: block.offset], block.text[len(block.text.rstrip()) :]
    text = lead + translation + trail
    return _Placer(block, text, shifted(links, len(lead), 0), len(trail)).emit(-1, 0, len(text))


class _Placer:
    """Places the tags of one block in its translation."""

    def __init__(self, block: Block, text: str, links: Sequence[Link], trail: int) -> None:
        """`text`: the translation between the block's leading and trailing whitespace (`trail` characters)."""
        self._tags = block.tags
        self._source = block.text
        self._text = text
        self._lead, self._trail = block.offset, trail
        self._source_index, self._target_index = _Words(block.text), _Words(text)
        self._source_words, self._target_words = self._source_index.spans, self._target_index.spans
        self._targets: list[set[int]] = [set() for _ in self._source_words]
        for link in links:
            sources = self._source_index.overlapping(link.source)
            targets = self._target_index.overlapping(link.target)
            for s, t in self._pairs(sources, targets):
                self._targets[s].add(t)
        self._children: dict[int, list[int]] = {}
        for i, tag in enumerate(self._tags):
            self._children.setdefault(tag.parent, []).append(i)

    def _pairs(self, sources: range, targets: range) -> list[tuple[int, int]]:
        """The source and target words of one link that go together: one to one if they are as many ("car." ->
        "voiture."), else words with words and punctuation with punctuation, else all with all."""
        if len(sources) == len(targets):
            return list(zip(sources, targets, strict=True))
        is_source_word, is_target_word = self._source_index.is_word, self._target_index.is_word
        alike = [(s, t) for s in sources for t in targets if is_source_word[s] == is_target_word[t]]
        return alike or [(s, t) for s in sources for t in targets]

    def emit(self, parent: int, lo: int, hi: int) -> str:
        """The HTML of translation characters [lo, hi) with the tags inside `parent` placed in it."""
        out, cursor = [], lo
        for start, end, i in self._place(self._children.get(parent, []), lo, hi):
            tag = self._tags[i]
            out += [escape_text(self._text[cursor:start]), tag.open]
            if not tag.atom:
                out += [self.emit(i, start, end), tag.close]
            if start == end and lo < hi and self._spaced(tag, start):
                out.append(" ")
            cursor = end
        out.append(escape_text(self._text[cursor:hi]))
        return "".join(out)

    def _spaced(self, tag: Tag, position: int) -> bool:
        """Whether a tag placed at a point between spaces, as it was in the source, needs a space after it
        (the translation has one space where the source had one on each side)."""
        after_space = (
            self._text[position - 1 : position].isspace() and not self._text[position : position + 1].isspace()
        )
        return after_space and position < len(self._text) and self._source[tag.start : tag.start + 1].isspace()

    def _place(self, tags: list[int], lo: int, hi: int) -> list[Placed]:
        """Where each of sibling `tags` goes within [lo, hi): disjoint ranges and points, in output order."""
        ranged, points = [], []
        for i in tags:
            wanted = None if self._tags[i].atom else self._wanted(i)
            if wanted is not None and max(wanted[0], lo) < min(wanted[1], hi):
                ranged.append((max(wanted[0], lo), min(wanted[1], hi), i))
            else:
                points.append((min(max(self._anchor(self._tags[i].start), lo), hi), i))
        kept: list[Placed] = []
        cursor = lo
        for start, end, i in sorted(ranged):
            start = self._next_word_start(max(start, cursor))
            if start < end:
                kept.append((start, end, i))
                cursor = end
            else:
                points.append((cursor, i))
        points = [(next((e for s, e, _ in kept if s < p < e), p), i) for p, i in points]
        placed = [(s, e, i, 1) for s, e, i in kept] + [(p, p, i, 0) for p, i in points]
        return [(s, e, i) for s, e, i, _ in sorted(placed, key=lambda x: (x[0], x[3], x[2]))]

    def _wanted(self, i: int) -> tuple[int, int] | None:
        """The characters from the first to the last target word linked to the tag's words."""
        tag = self._tags[i]
        words = set().union(*(self._targets[s] for s in self._source_index.overlapping((tag.start, tag.end))))
        if not words:
            return None
        return self._target_words[min(words)][0], self._target_words[max(words)][1]

    def _anchor(self, position: int) -> int:
        """The character matching source character `position`: after the target words of the source word
        before it (and after a space, if there was one before `position`); in the leading or trailing
        whitespace, the same place there."""
        before = bisect.bisect_left(self._source_index.starts, position)  # source words starting before it
        if before == 0 or not self._target_words:
            return min(position, self._lead)
        if before == len(self._source_words):
            past = max(0, position - self._source_words[-1][1])
            return len(self._text) - self._trail + min(past, self._trail)
        linked = self._targets[before - 1]
        if linked:
            end = self._target_words[max(linked)][1]
        else:  # no link: proportionally
            k = round(before * len(self._target_words) / len(self._source_words))
            end = self._target_words[k - 1][1] if k else 0
        spaced = self._source[position - 1 : position].isspace() and self._text[end : end + 1].isspace()
        return end + 1 if spaced else end  # after the space, as in the source

    def _next_word_start(self, position: int) -> int:
        """The start of the first target word at or after `position` (the text's end if none)."""
        starts = self._target_index.starts
        k = bisect.bisect_left(starts, position)
        return starts[k] if k < len(starts) else len(self._text)


class _Words:
    """The words and punctuation runs of a text: their spans, in order, and which of them are words."""

    def __init__(self, text: str) -> None:
        found = list(WORD.finditer(text))
        self.spans = [m.span() for m in found]
        self.starts = [start for start, _ in self.spans]
        self.ends = [end for _, end in self.spans]
        self.is_word = [m.group("word") is not None for m in found]

    def overlapping(self, span: tuple[int, int]) -> range:
        """The indices of the words overlapping characters [start, end)."""
        start, end = span
        return range(bisect.bisect_right(self.ends, start), bisect.bisect_left(self.starts, end))
