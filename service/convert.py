"""Engine results to protobuf messages: per text, its segments and the hypotheses they make up together."""

from __future__ import annotations

from service.api.translation.v1 import translation_pb2 as pb
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
    return pb.Translation(
        hypotheses=hypotheses,
        source_tokens=[token for t in sentences for token in t.source_tokens] if attention else [],
        segments=segments,
        detected_language=pb.LanguageDetection(
            language=job.languages[index].language, confidence=job.languages[index].confidence
        ),
        warnings=[pb.TranslationWarning(kind=w.kind, message=w.message) for w in job.warnings[index]],
    )


def _segment(sentence: Sentence, translation: Translation, job: Job) -> pb.Segment:
    attention = job.options.return_attention
    return pb.Segment(
        start=sentence.span.start,
        end=sentence.span.end,
        hypotheses=[
            _hypothesis(h, translation.source_tokens, job, restore(h.text, sentence.casing))
            for h in translation.hypotheses
        ],
        source_tokens=translation.source_tokens if attention else [],
    )


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
