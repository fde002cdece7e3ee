"""Checks a TranslateRequest against the server's limits and turns it into a Job."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from service.api.translation.v1 import translation_pb2 as pb
from service.backend import ModelSet
from service.config import Settings
from service.errors import InvalidRequest
from service.manifest import EXPLAIN_FILE
from service.text.markup import Document, MarkupTooDeep, parse
from service.types import DecodeOptions

MAX_LENGTH_PENALTY = 5.0


@dataclass(frozen=True)
class Markup:
    """An HTML text: its parsed document and the source token count of each of its blocks."""

    document: Document
    tokens: list[int]


@dataclass(frozen=True)
class Job:
    """A valid request: texts (with their source token counts; 0 for blank texts), model and options.

    An HTML request has `markup`, one per text, and the token count of a text is that of all its blocks.
    """

    model: str
    texts: list[str]
    tokens: list[int]
    options: DecodeOptions
    return_scores: bool
    markup: list[Markup] | None = None


def is_blank(text: str) -> bool:
    """Blank texts (empty or whitespace only) translate to an empty hypothesis without the model."""
    return not text.strip()


def validate(request: pb.TranslateRequest, models: ModelSet, settings: Settings) -> Job:
    """The request as a Job; raises InvalidRequest or ModelNotFound saying what is wrong and allowed."""
    id_bytes = len(request.id.encode())
    if id_bytes > settings.max_id_bytes:
        raise InvalidRequest(f"id has {id_bytes} bytes; at most {settings.max_id_bytes} are allowed")
    texts = list(request.texts)
    if not texts:
        raise InvalidRequest("texts is empty; send at least one text")
    if len(texts) > settings.max_texts_per_request:
        raise InvalidRequest(f"{len(texts)} texts in one request; at most {settings.max_texts_per_request} are allowed")
    model = models.resolve(request.model)
    options = decode_options(request, settings)
    html = is_html(request)
    backend = models[model]
    if request.attention_detail and not backend.explains:
        raise InvalidRequest(
            f"attention_detail: model {model} has no attention-detail graph ({EXPLAIN_FILE} in its directory);"
            " export the model again with python -m model.export to get one, or leave attention_detail false"
        )
    max_tokens = min(settings.max_text_tokens, backend.max_source_tokens)
    whose = f" by model {model}" if max_tokens < settings.max_text_tokens else ""
    tokens, markup = [], []
    for i, text in enumerate(texts):
        if len(text) > settings.max_text_chars:
            raise InvalidRequest(
                f"texts[{i}] has {len(text)} characters; at most {settings.max_text_chars} are allowed"
            )
        if html:
            markup.append(_markup(i, text, backend.count_tokens, max_tokens, whose))
            tokens.append(sum(markup[-1].tokens))
            continue
        n = 0 if is_blank(text) else backend.count_tokens(text)
        if n > max_tokens:
            raise InvalidRequest(f"texts[{i}] has {n} tokens; at most {max_tokens} are allowed{whose}")
        tokens.append(n)
    blocks = sum(len(m.tokens) for m in markup)
    if blocks > settings.max_queue_size:  # more than the model's queue could ever take at once
        raise InvalidRequest(
            f"the texts hold {blocks} blocks to translate; at most {settings.max_queue_size} are allowed in one request"
        )
    return Job(model, texts, tokens, options, request.return_scores, markup if html else None)


def is_html(request: pb.TranslateRequest) -> bool:
    """Whether the texts are HTML; an unknown format is refused."""
    if request.format not in pb.TextFormat.values():
        allowed = ", ".join(f"{name} ({number})" for name, number in pb.TextFormat.items())
        raise InvalidRequest(f"format is {request.format}; it must be one of {allowed}")
    html = request.format == pb.TEXT_FORMAT_HTML
    if html and request.return_attention:
        raise InvalidRequest(
            "return_attention is not available with format TEXT_FORMAT_HTML: an HTML text is translated"
            " block by block; ask for TEXT_FORMAT_PLAIN to get attention"
        )
    return html


def _markup(i: int, text: str, count_tokens: Callable[[str], int], max_tokens: int, whose: str) -> Markup:
    """An HTML text parsed, each of its blocks within the token limit."""
    try:
        document = parse(text)
    except MarkupTooDeep as error:
        raise InvalidRequest(f"texts[{i}] {error}") from None
    tokens = [count_tokens(block.source) for block in document.blocks]
    for j, n in enumerate(tokens):
        if n > max_tokens:
            raise InvalidRequest(
                f"texts[{i}] has a block of {n} tokens (block {j + 1} of {len(tokens)}, the text of one"
                f" block-level element); at most {max_tokens} are allowed{whose}"
            )
    return Markup(document, tokens)


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
