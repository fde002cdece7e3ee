"""Engine results to protobuf messages: per text, its segments and the hypotheses they make up together."""

from __future__ import annotations

import numpy as np

from service.api.translation.v1 import translation_pb2 as pb
from service.attention.detail import AttentionDetail
from service.text.casing import restore
from service.text.document import Document, Sentence
from service.types import Hypothesis, Translation
from service.validation import Job


def to_response(job: Job, translations: list[list[Translation]], request_id: str) -> pb.TranslateResponse:
    """The response to `job`: per text (in input order) the translations of its sentences, in order."""
    return pb.TranslateResponse(
        model=job.model,
        request_id=request_id,
        translations=[
            _translation(d, t, job, i) for i, (d, t) in enumerate(zip(job.documents, translations, strict=True))
        ],
    )


def markup_response(job: Job, translations: list[Translation], request_id: str) -> pb.TranslateResponse:
    """The response to an HTML `job`: per text, the page put back together from its translated blocks."""
    return pb.TranslateResponse(
        model=job.model,
        request_id=request_id,
        translations=[
            pb.Translation(
                hypotheses=[_hypothesis(h, [], job, h.text) for h in translation.hypotheses],
                detected_language=_detection(job, i),
                warnings=_warnings(job, i),
            )
            for i, translation in enumerate(translations)
        ],
    )


def _translation(document: Document, sentences: list[Translation], job: Job, index: int) -> pb.Translation:
    """A text's translation: hypothesis i assembles hypothesis i of every sentence (a blank text gets one empty
    hypothesis, a text of layout only itself); a text of one sentence has its sentence's tokens, score and
    attention."""
    attention = job.options.return_attention
    segments = [_segment(s, t, job) for s, t in zip(document.sentences, sentences, strict=True)]
    ranks = min((len(t.hypotheses) for t in sentences), default=1)
    hypotheses = []
    for rank in range(ranks):
        parts = [t.hypotheses[rank] for t in sentences]
        text = document.assemble([h.text for h in parts]) if document.text.strip() else ""
        if len(parts) == 1:
            hypotheses.append(_hypothesis(parts[0], sentences[0].source_tokens, job, text))
        else:
            tokens = [token for h in parts for token in h.tokens]
            score = sum(h.score for h in parts) if job.return_scores else 0.0
            hypotheses.append(pb.Hypothesis(text=text, tokens=tokens, score=score))
    message = pb.Translation(
        hypotheses=hypotheses,
        source_tokens=[token for t in sentences for token in t.source_tokens] if attention else [],
        segments=segments,
        detected_language=_detection(job, index),
        warnings=_warnings(job, index),
    )
    if len(segments) == 1 and segments[0].HasField("attention_detail"):
        message.attention_detail.CopyFrom(segments[0].attention_detail)
    return message


def _detection(job: Job, index: int) -> pb.LanguageDetection:
    return pb.LanguageDetection(language=job.languages[index].language, confidence=job.languages[index].confidence)


def _warnings(job: Job, index: int) -> list[pb.TranslationWarning]:
    return [pb.TranslationWarning(kind=w.kind, message=w.message) for w in job.warnings[index]]


def _segment(sentence: Sentence, translation: Translation, job: Job) -> pb.Segment:
    attention = job.options.return_attention
    message = pb.Segment(
        start=sentence.span.start,
        end=sentence.span.end,
        hypotheses=[
            _hypothesis(h, translation.source_tokens, job, restore(h.text, sentence.casing))
            for h in translation.hypotheses
        ],
        source_tokens=translation.source_tokens if attention else [],
    )
    if job.options.attention_detail and translation.detail is not None:
        message.attention_detail.CopyFrom(_detail(translation.detail))
    return message


def _detail(detail: AttentionDetail) -> pb.AttentionDetail:
    return pb.AttentionDetail(
        source_tokens=detail.source_tokens,
        target_tokens=detail.target_tokens,
        encoder_self_attention=_maps(detail.encoder_self),
        decoder_self_attention=_maps(detail.decoder_self),
        cross_attention=_maps(detail.cross),
    )


def _maps(weights: np.ndarray) -> list[pb.AttentionMap]:
    """One map per layer and head of a (layers, heads, rows, cols) array."""
    layers, heads, rows, cols = weights.shape
    return [
        pb.AttentionMap(layer=layer, head=head, rows=rows, cols=cols, weights=weights[layer, head].ravel().tolist())
        for layer in range(layers)
        for head in range(heads)
    ]


def _hypothesis(h: Hypothesis, source_tokens: list[str], job: Job, text: str) -> pb.Hypothesis:
    """One hypothesis with `text` (the model's, cased like its source), and its score and attention if asked."""
    message = pb.Hypothesis(text=text, tokens=h.tokens, score=h.score if job.return_scores else 0.0)
    if job.options.return_attention:
        weights = h.attention
        rows, cols = weights.shape if weights is not None else (0, 0)
        message.attention.CopyFrom(
            pb.Attention(
                rows=rows,
                cols=cols,
                weights=weights.ravel().tolist() if weights is not None else [],
                source_tokens=source_tokens,
                target_tokens=h.tokens,
            )
        )
    return message
