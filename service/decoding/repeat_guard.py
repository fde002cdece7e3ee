"""The repeat guard: the search never writes the same word n-gram twice in one output ("un bus à double double").

It reads words, not subword ids. A model trained with BPE-dropout now and then spells a word in other pieces than
the tokenizer's ("▁Park p lat z" beside "▁Parkplatz"), and a guard on subword n-grams lets such a repeat through.
A word is a run of letters, digits or "_", compared lower-case, as a reader (and a word-trigram count) sees it:
punctuation between words does not break an n-gram ("sein Hund, sein Hund").

A token is blocked when, with it, the row's text would end in a word n-gram the text already has, the last word
taken as far as it is written: a word spelled in several pieces is stopped at the piece that completes it.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

import numpy as np

WORD = re.compile(r"\w+")
OPEN_WORD = re.compile(r"\w+$")  # a text's last word, when the text ends inside it
NOTHING = np.zeros(0, np.int64)


@dataclass(frozen=True)
class PieceWords:
    """Each vocabulary piece's text and first word (lower-case), the pieces indexed by that word."""

    texts: list[str]  # piece id -> its text, "▁" as a space; special pieces (bos, eos, pad, unk, bytes) empty
    continuing: dict[str, np.ndarray]  # first word -> ids of the pieces that start with a word character
    starting: dict[str, np.ndarray]  # first word -> ids of the pieces that start with a space or punctuation

    @classmethod
    def of(cls, pieces: Sequence[str], special: Collection[int] = ()) -> PieceWords:
        """Index a tokenizer's pieces ("▁" marks the start of a word); `special`: the ids that have no text."""
        texts = ["" if i in special else piece.replace("▁", " ") for i, piece in enumerate(pieces)]
        continuing: dict[str, list[int]] = {}
        starting: dict[str, list[int]] = {}
        for i, text in enumerate(texts):
            first = WORD.search(text.lower())
            if first is not None:
                index = continuing if first.start() == 0 else starting
                index.setdefault(first.group(), []).append(i)
        return cls(texts, _arrays(continuing), _arrays(starting))


@dataclass(frozen=True)
class Written:
    """What a row has written, read as words: enough to extend it by a piece and to ask what would repeat."""

    words: tuple[str, ...] = ()  # lower-case; the last one still open when `open_word` is set
    open_word: str = ""  # the last word as written so far, when the text ends inside it (a piece may go on with it)
    follows: dict[tuple[str, ...], tuple[str, ...]] = field(default_factory=dict)  # context -> next words, closed

    def then(self, text: str, size: int) -> Written:
        """This text followed by a piece's `text`, indexing each n-gram of `size` words closed by it."""
        if not text:
            return self
        joined = self.open_word + text
        words = self.words[: len(self.words) - bool(self.open_word)] + tuple(WORD.findall(joined.lower()))
        end = OPEN_WORD.search(joined)
        open_word = end.group() if end else ""
        closed_before, closed = len(self.words) - bool(self.open_word), len(words) - bool(open_word)
        follows, first = self.follows, max(closed_before, size - 1)  # first: the first word that ends a new n-gram
        if closed > first:
            follows = dict(follows)
            for last in range(first, closed):
                context = words[last - size + 1 : last]
                follows[context] = (*follows.get(context, ()), words[last])
        return Written(words, open_word, follows)


class WordRepeatGuard:
    """Blocks every token that would repeat a word n-gram of `size` (>= 2) words already in its row.

    What each row has written is kept from one step to the next (by its tokens), so a step reads one new piece per
    row, not the row's whole text."""

    def __init__(self, words: PieceWords, size: int):
        if size < 2:
            raise ValueError(f"a repeat guard's n-gram has at least 2 words, not {size}")
        self._words, self._size = words, size
        self._written: dict[tuple[int, ...], Written] = {}

    def blocked(self, history: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(rows, tokens): each token blocked in a row of `history` (rows, tokens so far)."""
        rows = [tuple(tokens) for tokens in history.tolist()]
        written = [self._read(tokens) for tokens in rows]
        self._written = dict(zip(rows, written, strict=True))  # the rows of the next step extend these
        found = [(row, ids) for row, each in enumerate(written) if len(ids := self._blocked_after(each))]
        if not found:
            return np.zeros(0, np.intp), NOTHING
        blocked_rows = np.concatenate([np.full(len(ids), row, np.intp) for row, ids in found])
        return blocked_rows, np.concatenate([ids for _, ids in found])

    def _read(self, tokens: tuple[int, ...]) -> Written:
        """The row's words, from what the row before it (its tokens but the last) had written."""
        known = self._written.get(tokens)
        if known is not None:
            return known
        before = self._written.get(tokens[:-1]) if tokens else None
        if before is None:
            return self._read_all(tokens)
        return before.then(self._words.texts[tokens[-1]], self._size)

    def _read_all(self, tokens: tuple[int, ...]) -> Written:
        """The row's words, read from its first token (a row the last step did not have)."""
        written = Written()
        for token in tokens:
            written = written.then(self._words.texts[token], self._size)
        return written

    def _blocked_after(self, written: Written) -> np.ndarray:
        """The tokens that would end this text in a word n-gram it already has."""
        words, part, context = written.words, written.open_word, self._size - 1
        if len(words) < context:
            return NOTHING
        ending = words[len(words) - context :]
        repeated = list(written.follows.get(ending, ()))  # a piece that starts the n-gram's last word
        if part and len(words) > context and words[-context - 1 : -1] == ending:
            repeated.append(words[-1])  # the open word, which such a piece closes
        blocked = [self._words.starting.get(word, NOTHING) for word in repeated]
        if not part:
            blocked += [self._words.continuing.get(word, NOTHING) for word in repeated]
        elif len(words) > context:  # a piece that completes the open word
            for word in written.follows.get(words[-context - 1 : -1], ()):
                if len(word) > len(words[-1]) and word.startswith(words[-1]):
                    blocked.append(self._words.continuing.get(word[len(words[-1]) :], NOTHING))
        return np.concatenate(blocked) if blocked else NOTHING


def _arrays(index: dict[str, list[int]]) -> dict[str, np.ndarray]:
    return {word: np.array(ids, np.int64) for word, ids in index.items()}
