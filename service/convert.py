"""Engine results to protobuf messages."""

from __future__ import annotations

import numpy as np

from service.api.translation.v1 import translation_pb2 as pb
from service.attention.detail import AttentionDetail
from service.types import Hypothesis, Translation
from service.validation import Job

BLANK = Translation(source_tokens=[], hypotheses=[Hypothesis(text="", token_ids=[], tokens=[], score=0.0)])


def to_response(job: Job, translations: list[Translation], request_id: str) -> pb.TranslateResponse:
    """The response to `job`: translations in input order, with scores and attention if asked."""
    return pb.TranslateResponse(
        model=job.model, request_id=request_id, translations=[_translation(t, job) for t in translations]
    )


def _translation(translation: Translation, job: Job) -> pb.Translation:
    attention = job.options.return_attention
    hyps = translation.hypotheses
    message = pb.Translation(
        hypotheses=[_hypothesis(h, translation.source_tokens, job.return_scores, attention) for h in hyps],
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


def _hypothesis(h: Hypothesis, source_tokens: list[str], scores: bool, attention: bool) -> pb.Hypothesis:
    message = pb.Hypothesis(text=h.text, tokens=h.tokens, score=h.score if scores else 0.0)
    if attention:
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
