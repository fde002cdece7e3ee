"""Checks a TranslateRequest against the server's limits and turns it into a Job."""

from __future__ import annotations

import math
from dataclasses import dataclass

from service.api.translation.v1 import translation_pb2 as pb
from service.backend import ModelSet
from service.config import Settings
from service.errors import InvalidRequest
from service.manifest import EXPLAIN_FILE
from service.types import DecodeOptions

MAX_LENGTH_PENALTY = 5.0


@dataclass(frozen=True)
class Job:
    """A valid request: texts (with their source token counts; 0 for blank texts), model and options."""

    model: str
    texts: list[str]
    tokens: list[int]
    options: DecodeOptions
    return_scores: bool


def is_blank(text: str) -> bool:
    """Blank texts (empty or whitespace only) translate to an empty hypothesis without the model."""
    return not text.strip()


def validate(request: pb.TranslateRequest, models: ModelSet, settings: Settings) -> Job:
    """The request as a Job; raises InvalidRequest or ModelNotFound saying what is wrong and allowed."""
    texts = list(request.texts)
    if not texts:
        raise InvalidRequest("texts is empty; send at least one text")
    if len(texts) > settings.max_texts_per_request:
        raise InvalidRequest(f"{len(texts)} texts in one request; at most {settings.max_texts_per_request} are allowed")
    model = models.resolve(request.model)
    options = decode_options(request, settings)
    backend = models[model]
    if request.attention_detail and not backend.explains:
        raise InvalidRequest(
            f"attention_detail: model {model} has no attention-detail graph ({EXPLAIN_FILE} in its directory);"
            " export the model again with python -m model.export to get one, or leave attention_detail false"
        )
    max_tokens = min(settings.max_text_tokens, backend.max_source_tokens)
    whose = f" by model {model}" if max_tokens < settings.max_text_tokens else ""
    tokens = []
    for i, text in enumerate(texts):
        if len(text) > settings.max_text_chars:
            raise InvalidRequest(
                f"texts[{i}] has {len(text)} characters; at most {settings.max_text_chars} are allowed"
            )
        n = 0 if is_blank(text) else backend.count_tokens(text)
        if n > max_tokens:
            raise InvalidRequest(f"texts[{i}] has {n} tokens; at most {max_tokens} are allowed{whose}")
        tokens.append(n)
    return Job(model, texts, tokens, options, request.return_scores)


def decode_options(request: pb.TranslateRequest, settings: Settings) -> DecodeOptions:
    """The search options of a request, its zeros replaced by the defaults."""
    beam_size = request.beam_size or 1
    if beam_size > settings.max_beam_size:
        raise InvalidRequest(f"beam_size is {beam_size}; it must be between 1 and {settings.max_beam_size} (0 means 1)")
    n_best = request.n_best or 1
    most = min(beam_size, settings.max_n_best)
    if n_best > most:
        raise InvalidRequest(
            f"n_best is {n_best}; it must be between 1 and {most}, the smaller of beam_size ({beam_size})"
            f" and the server's limit ({settings.max_n_best}) (0 means 1)"
        )
    if request.max_length > settings.max_length_limit:
        raise InvalidRequest(
            f"max_length is {request.max_length}; at most {settings.max_length_limit} is allowed (0 means automatic)"
        )
    penalty = request.length_penalty or 1.0
    if not (math.isfinite(penalty) and 0 < penalty <= MAX_LENGTH_PENALTY):
        raise InvalidRequest(
            f"length_penalty is {request.length_penalty:g}; it must be in (0, {MAX_LENGTH_PENALTY:g}] (0 means 1.0)"
        )
    return DecodeOptions(
        beam_size=beam_size,
        n_best=n_best,
        length_penalty=penalty,
        max_length=request.max_length or None,
        return_attention=request.return_attention,
        attention_detail=request.attention_detail,
    )
