"""Documents through a real server and the tiny model: each sentence translated as if sent alone, layout kept."""

from __future__ import annotations

import pytest

from service.config import Settings
from service.decoding.engine import Engine
from service.types import DecodeOptions
from tests.service.harness import ServerThread
from tests.support.tiny import source_sentences

GUARD = Settings.model_fields["no_repeat_ngram_size"].default  # the server's default repeat guard
SENTENCES = [s.capitalize() + "." for s in sorted(set(source_sentences(60, seed=5)))[:12]]


def alone(engine: Engine, sentence: str, options: DecodeOptions) -> list[str]:
    return [h.text for h in engine.translate([sentence], options)[0].hypotheses]


@pytest.mark.parametrize("beam_size", [1, 3])
def test_a_document_translates_sentence_by_sentence_as_each_alone(
    tiny_server: ServerThread, fp32_engine: Engine, beam_size: int
) -> None:
    first, second = SENTENCES[:5], SENTENCES[5:9]
    document = "  " + " ".join(first[:3]) + "\n" + "  ".join(first[3:]) + "\n\n- " + "\n- ".join(second) + "\n"
    n_best = min(beam_size, 2)
    with tiny_server.client() as client:
        response = client.translate([document, SENTENCES[9]], beam_size=beam_size, n_best=n_best, return_scores=True)
    translation = response.translations[0]
    options = DecodeOptions(beam_size=beam_size, n_best=n_best, no_repeat_ngram_size=GUARD)
    expected = [alone(fp32_engine, s, options) for s in first + second]
    assert [[h.text for h in segment.hypotheses] for segment in translation.segments] == expected
    assert [document[s.start : s.end] for s in translation.segments] == first + second
    best = [e[0] for e in expected]
    layout = "  " + " ".join(best[:3]) + "\n" + "  ".join(best[3:5]) + "\n\n- " + "\n- ".join(best[5:]) + "\n"
    assert translation.hypotheses[0].text == layout
    assert translation.hypotheses[0].score == pytest.approx(sum(s.hypotheses[0].score for s in translation.segments))
    assert len(translation.hypotheses) == n_best
    assert [h.text for h in response.translations[1].hypotheses] == alone(fp32_engine, SENTENCES[9], options)


def test_a_thousand_sentence_document_goes_through(tiny_server: ServerThread, fp32_engine: Engine) -> None:
    """Beyond the old queue of 1,024 sentences with another request beside it; nothing lost or reordered."""
    sentences = [SENTENCES[i % len(SENTENCES)] for i in range(1000)]
    lines = [" ".join(sentences[i : i + 5]) for i in range(0, 1000, 5)]
    document = "\n\n".join("\n".join(lines[i : i + 2]) for i in range(0, 200, 2))
    assert len(document) <= tiny_server.settings.max_request_chars
    with tiny_server.client() as client:
        response = client.translate([document, SENTENCES[0]])
    segments = response.translations[0].segments
    assert len(segments) == 1000
    translated = {s: alone(fp32_engine, s, DecodeOptions(no_repeat_ngram_size=GUARD))[0] for s in SENTENCES}
    assert [s.hypotheses[0].text for s in segments] == [translated[s] for s in sentences]
    assert response.translations[0].hypotheses[0].text.count("\n\n") == 99


def test_attention_and_scores_per_segment(tiny_server: ServerThread, fp32_engine: Engine) -> None:
    document = " ".join(SENTENCES[:3])
    with tiny_server.client() as client:
        response = client.translate([document], return_attention=True, return_scores=True)
    translation = response.translations[0]
    for segment, sentence in zip(translation.segments, SENTENCES[:3], strict=True):
        expected = fp32_engine.translate([sentence], DecodeOptions(return_attention=True, no_repeat_ngram_size=GUARD))[
            0
        ]
        attention = segment.hypotheses[0].attention
        assert (attention.rows, attention.cols) == expected.best.attention.shape
        assert list(segment.source_tokens) == expected.source_tokens
        assert segment.hypotheses[0].score == pytest.approx(expected.best.score, abs=1e-4)
    assert not translation.hypotheses[0].HasField("attention")  # several segments: attention per segment only


def test_a_layout_only_text_comes_back_as_it_is(tiny_server: ServerThread) -> None:
    with tiny_server.client() as client:
        response = client.translate(["- \n* ", " \n "])
    assert [t.hypotheses[0].text for t in response.translations] == ["- \n* ", ""]
    assert [len(t.segments) for t in response.translations] == [0, 0]
