"""A text as the model takes it: its sentences, each in sentence case and within the model's token limit."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

from service.text.casing import Casing, detect, restore, to_sentence_case
from service.text.segment import Span, fit_spans, reassemble, sentence_spans


@dataclass(frozen=True)
class Sentence:
    """One unit the model translates: where it is in the text, how it is cased, what the model gets."""

    span: Span
    casing: Casing
    source: str  # the sentence in sentence case
    tokens: int  # source tokens of `source`, end of sentence included


@dataclass(frozen=True)
class Document:
    """A text and its sentences, in order."""

    text: str
    sentences: list[Sentence]

    def assemble(self, translations: Sequence[str]) -> str:
        """The text with each sentence replaced by its translation, cased like the sentence."""
        cased = [restore(t, s.casing) for s, t in zip(self.sentences, translations, strict=True)]
        return reassemble(self.text, [s.span for s in self.sentences], cased)


def split_document(text: str, language: str, count_tokens: Callable[[str], int], max_tokens: int) -> Document:
    """`text` as sentences of at most `max_tokens` source tokens each; a longer one is cut into parts, which
    keep its casing."""
    counts: dict[str, int] = {}

    def count(source: str) -> int:
        if source not in counts:
            counts[source] = count_tokens(source)
        return counts[source]

    sentences = []
    for whole in sentence_spans(text, language):
        casing = detect(text[whole.start : whole.end])
        fits = partial(_fits, count=count, casing=casing, max_tokens=max_tokens)
        parts = fit_spans(text, [whole], fits)
        for part in parts:
            source = to_sentence_case(text[part.start : part.end], casing, first=part.start == whole.start)
            sentences.append(Sentence(part, casing, source, count(source)))
    return Document(text, sentences)


def _fits(piece: str, count: Callable[[str], int], casing: Casing, max_tokens: int) -> bool:
    return count(to_sentence_case(piece, casing)) <= max_tokens
