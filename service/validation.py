"""Checks a TranslateRequest against the server's limits and turns it into a Job."""

from __future__ import annotations

import math
from dataclasses import dataclass

from service.api.translation.v1 import translation_pb2 as pb
from service.config import Settings
from service.decoding.backend import ModelSet, TranslationBackend
from service.decoding.manifest import EXPLAIN_FILE
from service.errors import InvalidRequest
from service.text.document import Document, split_document
from service.text.language import DETECTOR, Detection
from service.text.markup import MarkupTooDeep, Page, parse
from service.types import DecodeOptions

MAX_LENGTH_PENALTY = 5.0
MAX_NO_REPEAT_NGRAM_SIZE = 16
LANGUAGE_MISMATCH = "LANGUAGE_MISMATCH"


@dataclass(frozen=True)
class TextWarning:
    """Something the client should know about a text's translation."""

    kind: str
    message: str


@dataclass(frozen=True)
class Markup:
    """An HTML text: its parsed page and the source token count of each of its blocks."""

    page: Page
    tokens: list[int]


@dataclass(frozen=True)
class Job:
    """A valid request: its texts as documents (split into sentences the model takes), model and options.

    An HTML request has `markup`, one per text (its documents then hold no sentences: its blocks are translated).
    """

    model: str
    documents: list[Document]
    options: DecodeOptions
    return_scores: bool
    languages: list[Detection]  # per text
    warnings: list[list[TextWarning]]  # per text
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
    chars = sum(map(len, texts))
    if chars > settings.max_request_chars:
        raise InvalidRequest(
            f"the texts have {chars} characters in all; at most {settings.max_request_chars} are allowed in one request"
        )
    model = resolve_model(request, models)
    options = decode_options(request, settings)
    html = is_html(request)
    backend = models[model]
    if request.attention_detail and not backend.explains:
        raise InvalidRequest(
            f"attention_detail: model {model} has no attention-detail graph ({EXPLAIN_FILE} in its directory);"
            " export the model again with python -m model.export to get one, or leave attention_detail false"
        )
    if html:
        markup = [_markup(i, text, backend, settings) for i, text in enumerate(texts)]
        documents = [Document(text, []) for text in texts]
        plain = [" ".join(block.source for block in m.page.blocks) for m in markup]
        units, what = sum(len(m.tokens) for m in markup), "blocks"
    else:
        markup, plain = [], texts
        documents = [_document(text, backend, settings) for text in texts]
        units, what = sum(len(d.sentences) for d in documents), "sentences"
    if units > settings.max_queue_size:  # more than the model's queue could ever take at once
        raise InvalidRequest(
            f"the texts have {units} {what} in all; at most {settings.max_queue_size} (the size of a model's"
            " queue) are allowed in one request"
        )
    detections = [DETECTOR.detect(text) for text in plain]
    notes = [_language_warnings(i, d, request, model, models, settings) for i, d in enumerate(detections)]
    return Job(model, documents, options, request.return_scores, detections, notes, markup if html else None)


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


def _markup(i: int, text: str, backend: TranslationBackend, settings: Settings) -> Markup:
    """An HTML text parsed, each of its blocks within the token limit."""
    max_tokens = min(settings.max_text_tokens, backend.max_source_tokens)
    whose = f" by model {backend.manifest.name}" if max_tokens < settings.max_text_tokens else ""
    try:
        page = parse(text)
    except MarkupTooDeep as error:
        raise InvalidRequest(f"texts[{i}] {error}") from None
    tokens = [backend.count_tokens(block.source) for block in page.blocks]
    for j, n in enumerate(tokens):
        if n > max_tokens:
            raise InvalidRequest(
                f"texts[{i}] has a block of {n} tokens (block {j + 1} of {len(tokens)}, the text of one"
                f" block-level element); at most {max_tokens} are allowed{whose}"
            )
    return Markup(page, tokens)


def resolve_model(request: pb.TranslateRequest, models: ModelSet) -> str:
    """The model a request means: by name, else by language pair, else the default; both must agree."""
    source, target = request.source_language, request.target_language
    if not (source or target):
        return models.resolve(request.model)
    if not (source and target):
        raise InvalidRequest("source_language and target_language go together: give both or neither")
    if not request.model:
        return models.for_pair(source, target)
    name = models.resolve(request.model)
    manifest = models[name].manifest
    if (manifest.source_language, manifest.target_language) != (source, target):
        pair = models.for_pair(source, target)  # NOT_FOUND if none, listing the served pairs
        raise InvalidRequest(
            f"model {name} translates {manifest.source_language} to {manifest.target_language}, not as"
            f" source_language and target_language ask (model {pair} does): name the model, the languages, or both"
            " in agreement"
        )
    return name


def _language_warnings(
    i: int, detection: Detection, request: pb.TranslateRequest, model: str, models: ModelSet, settings: Settings
) -> list[TextWarning]:
    """A warning if text i is clearly in another language than the model's source; refused if strict."""
    source = models[model].manifest.source_language
    if not detection.language or detection.language == source:
        return []
    if detection.confidence < settings.language_mismatch_confidence:
        return []
    message = (
        f"texts[{i}] seems to be in {detection.language!r} (confidence {detection.confidence:.2f}), not in"
        f" {source!r}, the source language of model {model}"
    )
    if request.strict_language:
        raise InvalidRequest(f"{message}; strict_language refuses it (served pairs: {', '.join(models.pairs())})")
    return [TextWarning(LANGUAGE_MISMATCH, message + "; translated anyway")]


def _document(text: str, backend: TranslationBackend, settings: Settings) -> Document:
    """The text split into sentences that fit the model; none for a blank text."""
    if is_blank(text):
        return Document(text, [])
    max_tokens = min(settings.max_text_tokens, backend.max_source_tokens)
    return split_document(text, backend.manifest.source_language, backend.count_tokens, max_tokens)


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
        no_repeat_ngram_size=no_repeat_ngram_size(request, settings),
        n_best=n_best,
        length_penalty=penalty,
        max_length=request.max_length or None,
        return_attention=request.return_attention,
        attention_detail=request.attention_detail,
    )


def no_repeat_ngram_size(request: pb.TranslateRequest, settings: Settings) -> int:
    """The request's n-gram size of the repeat guard: its own if set, else the server's default."""
    if not request.HasField("no_repeat_ngram_size"):
        return settings.no_repeat_ngram_size
    size = request.no_repeat_ngram_size
    if size == 1 or size > MAX_NO_REPEAT_NGRAM_SIZE:
        raise InvalidRequest(
            f"no_repeat_ngram_size is {size}; it must be 0 (no guard) or between 2 and {MAX_NO_REPEAT_NGRAM_SIZE}"
            " (unset: the server's default)"
        )
    return size
