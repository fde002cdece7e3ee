"""Sentence spans and reassembly: every sentence found, layout kept, over-long sentences cut without loss."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from service.text.segment import LINE, LIST_MARKER, Span, fit_spans, reassemble, sentence_spans

SENTENCES = [
    "A man rides a bike.",
    "Two dogs play in the snow!",
    "Is the girl smiling?",
    "Dr. Smith arrives at 8 a.m. every day.",
    "The price rose by 3.5 percent.",
    '"Where are you going?" she asked.',
    "Ein Mann fährt Fahrrad.",
]
MARKERS = ["", "- ", "* ", "• ", "1. ", "2) ", "# ", "> "]
SPACES = [" ", "  ", "\t", " \u00a0"]


@st.composite
def documents(draw: st.DrawFn) -> tuple[str, list[str], str]:
    """A document of lines (indentation, list marker, sentences with odd spaces between), blank lines and odd
    line breaks; its sentences; and the document with sentence i replaced by "<i>"."""
    text, marked, sentences = "", "", []

    def add(layout: str, sentence: str = "") -> None:
        nonlocal text, marked
        text += layout + sentence
        marked += layout + (f"<{len(sentences)}>" if sentence else "")
        if sentence:
            sentences.append(sentence)

    add(draw(st.sampled_from(["", "\n", "  "])))
    for _ in range(draw(st.integers(1, 6))):
        add(draw(st.sampled_from(["", " ", "   ", "\t"])) + draw(st.sampled_from(MARKERS)))
        for i, sentence in enumerate(draw(st.lists(st.sampled_from(SENTENCES), max_size=4))):
            add(draw(st.sampled_from(SPACES)) if i else "", sentence)
        add(draw(st.sampled_from(["", " ", "  "])) + draw(st.sampled_from(["\n", "\n\n", "\r\n"])))
    return text, sentences, marked


@settings(max_examples=200, deadline=None)
@given(documents())
def test_every_sentence_has_its_span_and_the_layout_survives(case: tuple[str, list[str], str]) -> None:
    """Segments in order, one per sentence, and putting translations in their place changes nothing else."""
    text, sentences, marked = case
    spans = sentence_spans(text, "en")
    assert [text[s.start : s.end] for s in spans] == sentences
    assert reassemble(text, spans, [f"<{i}>" for i in range(len(spans))]) == marked


@settings(max_examples=200, deadline=None)
@given(st.text(st.characters(exclude_categories=["Cs"]), max_size=200), st.integers(1, 12))
def test_cut_parts_cover_every_character_and_fit(text: str, most_words: int) -> None:
    """Whatever the text: the parts are in order, leave out only whitespace, and each fits."""

    def fits(piece: str) -> bool:
        return len(piece.split()) <= most_words and len(piece) <= 3 * most_words

    spans = fit_spans(text, sentence_spans(text, "en"), fits)
    covered = set()
    for span in spans:
        piece = text[span.start : span.end]
        assert piece == piece.strip() and piece and (fits(piece) or len(piece) == 1)
        covered.update(range(span.start, span.end))
    assert all(text[i].isspace() or i in covered or _marker_char(text, i) for i in range(len(text)))
    assert all(a.end <= b.start for a, b in zip(spans, spans[1:], strict=False))


def _marker_char(text: str, i: int) -> bool:
    """Whether character i is in the list marker at the start of its line (layout, never translated)."""
    line = next(m for m in LINE.finditer(text) if m.start() <= i < m.end())
    marker = LIST_MARKER.match(line.group())
    return marker is not None and i < line.start() + marker.end()


def test_a_sentence_is_cut_at_punctuation_before_words() -> None:
    text = "a b c, d e f g h; i"
    spans = fit_spans(text, [Span(0, len(text))], lambda piece: len(piece.split()) <= 3)
    assert [text[s.start : s.end] for s in spans] == ["a b c,", "d e f", "g h;", "i"]


def test_a_long_word_is_cut_between_characters() -> None:
    text = "x" * 25
    spans = fit_spans(text, [Span(0, 25)], lambda piece: len(piece) <= 10)
    assert [(s.start, s.end) for s in spans] == [(0, 10), (10, 20), (20, 25)]
