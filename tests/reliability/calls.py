"""Counted gRPC calls, the checks every error message passes, and the engine's own answers to compare with."""

from __future__ import annotations

import asyncio
import re
import tempfile
import time
from collections.abc import AsyncIterable, Awaitable, Callable, Sequence
from typing import Any, TypeAlias, TypeVar

import grpc
import numpy as np
from grpc_health.v1 import health_pb2, health_pb2_grpc

from service.api.translation.v1 import translation_pb2 as pb
from service.api.translation.v1 import translation_pb2_grpc as pb_grpc
from service.config import Settings
from service.decoding.engine import Engine
from service.text.casing import restore
from service.text.document import Document, split_document
from service.types import DecodeOptions, Translation
from tests.reliability.tally import TALLY
from tests.support.tiny import source_sentences

T = TypeVar("T")
Outcome: TypeAlias = "T | grpc.aio.AioRpcError | None"  # the response, the error status, or None when lost
DEFAULT_GUARD: int = Settings.model_fields["no_repeat_ngram_size"].default  # the server's repeat guard
TEXTS = sorted(set(source_sentences(120, seed=21)))  # distinct sentences the tiny model knows
SERVING = health_pb2.HealthCheckResponse.SERVING
PATIENCE_S = 60.0  # a call without an answer after this long is lost
LEAKS = re.compile(
    rf"Traceback|File \"|{re.escape(tempfile.gettempdir())}/|[A-Za-z]+(Error|Exception)\b|<[a-z_.]+ object at"
)


def channel(
    address: str, credentials: grpc.ChannelCredentials | None = None, options: Sequence[tuple[str, Any]] = ()
) -> grpc.aio.Channel:
    """A channel of its own (its own connection, not one shared with other channels to `address`)."""
    options = [("grpc.use_local_subchannel_pool", 1), *options]
    if credentials is None:
        return grpc.aio.insecure_channel(address, options=options)
    return grpc.aio.secure_channel(address, credentials, options=options)


async def attempt(call: Awaitable[T], patience: float = PATIENCE_S, said: Sequence[str] = ()) -> Outcome[T]:
    """Awaits a call and counts how it ended; an error message must not leak server internals
    (`said`: what the request said that the message may repeat)."""
    try:
        response = await asyncio.wait_for(call, patience)
    except grpc.aio.AioRpcError as error:
        TALLY.count(error.code())
        assert_clean(error.details() or "", said)
        return error
    except TimeoutError:
        TALLY.sent += 1
        TALLY.lost += 1
        return None
    TALLY.count(grpc.StatusCode.OK)
    return response


def raw(connection: grpc.aio.Channel, method: str) -> grpc.aio.UnaryUnaryMultiCallable[bytes, bytes]:
    """`method`, sending and receiving bytes as they are."""
    call: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = connection.unary_unary(method)
    return call


async def collect(stream: AsyncIterable[T]) -> list[T]:
    """The responses of a streaming call."""
    return [response async for response in stream]


def send(stub: pb_grpc.TranslatorStub, request: pb.TranslateRequest, **kwargs: Any) -> asyncio.Future[Outcome[Any]]:
    """Starts a counted Translate call (`kwargs`: its timeout, metadata, ...)."""
    return asyncio.ensure_future(attempt(stub.Translate(request, **kwargs)))


def inline(response: pb.TranslateResponse, said: Sequence[str] = ()) -> grpc.StatusCode:
    """The status of a request answered in a stream, counted like a call's; its message passes `assert_clean`."""
    status = next(c for c in grpc.StatusCode if c.value[0] == response.status.code)
    TALLY.count(status)
    assert_clean(response.status.message, said)
    return status


def assert_clean(message: str, said: Sequence[str] = ()) -> None:
    """A message for clients: no traceback, no server path, no exception class names (besides what was `said`)."""
    for value in said:
        message = message.replace(repr(value), "").replace(value, "")
    leak = LEAKS.search(message)
    assert leak is None, f"the message {message!r} leaks {leak.group()!r}"


def code(outcome: Outcome[Any]) -> grpc.StatusCode | None:
    """The status code of an outcome (OK for a response), None when it was lost."""
    if outcome is None:
        return None
    return outcome.code() if isinstance(outcome, grpc.aio.AioRpcError) else grpc.StatusCode.OK


def options_of(request: pb.TranslateRequest) -> DecodeOptions:
    """The search a request asks for, as the API documents its zero values and unset fields."""
    guard = request.no_repeat_ngram_size if request.HasField("no_repeat_ngram_size") else DEFAULT_GUARD
    return DecodeOptions(
        no_repeat_ngram_size=guard,
        beam_size=request.beam_size or 1,
        n_best=request.n_best or 1,
        length_penalty=request.length_penalty or 1.0,
        max_length=request.max_length or None,
        return_attention=request.return_attention,
    )


class Reference:
    """The engine's answer to each sentence of a text alone, computed once per distinct (sentence, options)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._answers: dict[tuple[str, DecodeOptions], Translation] = {}
        self._documents: dict[str, Document] = {}

    def document(self, text: str) -> Document:
        """The text split as the server splits it (the tiny model takes fewer tokens than the server's limit)."""
        if text not in self._documents:
            language, engine = self._engine.manifest.source_language, self._engine
            self._documents[text] = split_document(text, language, engine.count_tokens, engine.max_source_tokens)
        return self._documents[text]

    def answer(self, text: str, options: DecodeOptions) -> Translation:
        key = (text, options)
        if key not in self._answers:
            self._answers[key] = self._engine.translate([text], options)[0]
        return self._answers[key]

    def matches(self, request: pb.TranslateRequest, response: pb.TranslateResponse) -> bool:
        """Whether `response` answers exactly `request` (each text, in order); counts a mismatch as wrong."""
        options = options_of(request)
        right = (
            response.id == request.id
            and response.model == (request.model or self._engine.manifest.name)
            and len(response.translations) == len(request.texts)
            and all(
                self._same_text(text, got, request, options)
                for text, got in zip(request.texts, response.translations, strict=False)
            )
        )
        TALLY.wrong += not right
        return right

    def _same_text(self, text: str, got: pb.Translation, request: pb.TranslateRequest, options: DecodeOptions) -> bool:
        """Each sentence's segment is its answer alone, and the text's hypotheses are those put in its layout."""
        if not text.strip():
            return _same(self.answer(text, options), got, request)
        document = self.document(text)
        answers = [self.answer(s.source, options) for s in document.sentences]
        if len(got.segments) != len(answers):
            return False
        for sentence, answer, segment in zip(document.sentences, answers, got.segments, strict=True):
            cased = [restore(h.text, sentence.casing) for h in answer.hypotheses]
            if (segment.start, segment.end) != (sentence.span.start, sentence.span.end):
                return False
            if not _same(answer, segment, request, cased):
                return False
        ranks = min((len(a.hypotheses) for a in answers), default=1)
        texts = [document.assemble([a.hypotheses[rank].text for a in answers]) for rank in range(ranks)]
        if len(answers) == 1:
            return _same(answers[0], got, request, texts)
        return [h.text for h in got.hypotheses] == texts


def _same(
    expected: Translation,
    got: pb.Translation | pb.Segment,
    request: pb.TranslateRequest,
    texts: list[str] | None = None,
) -> bool:
    """`got` holds the expected hypotheses (with `texts`, cased like the source, if given)."""
    hypotheses = expected.hypotheses
    if [h.text for h in got.hypotheses] != (texts if texts is not None else [h.text for h in hypotheses]):
        return False
    if [list(h.tokens) for h in got.hypotheses] != [h.tokens for h in hypotheses]:
        return False
    scores = [h.score if request.return_scores else 0.0 for h in hypotheses]
    if not np.allclose([h.score for h in got.hypotheses], scores, atol=1e-4):
        return False
    if not request.return_attention:
        return not got.source_tokens and not any(h.HasField("attention") for h in got.hypotheses)
    return list(got.source_tokens) == expected.source_tokens and all(
        _same_attention(h.attention, e.attention) for h, e in zip(got.hypotheses, hypotheses, strict=True)
    )


def _same_attention(got: pb.Attention, expected: np.ndarray | None) -> bool:
    weights = np.zeros((0, 0)) if expected is None else expected
    return (got.rows, got.cols) == weights.shape and np.allclose(got.weights, weights.ravel(), atol=1e-4)


async def until(condition: Callable[[], bool], timeout: float = 10) -> None:
    """Polls `condition` without blocking the event loop; fails after `timeout` seconds."""
    end = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < end, "condition not reached in time"
        await asyncio.sleep(0.005)


async def assert_serving(
    address: str,
    reference: Reference | None = None,
    credentials: grpc.ChannelCredentials | None = None,
    metadata: Sequence[tuple[str, str]] = (),
) -> None:
    """Health says SERVING and a normal request is answered (with the engine's answer, given a reference).

    Otherwise the server counts as crashed.
    """
    request = pb.TranslateRequest(id="canary", texts=TEXTS[:2])
    async with channel(address, credentials) as connection:
        check = health_pb2_grpc.HealthStub(connection).Check  # type: ignore[attr-defined]  # incomplete stubs
        health = await attempt(check(health_pb2.HealthCheckRequest()))
        response = await attempt(pb_grpc.TranslatorStub(connection).Translate(request, metadata=metadata))
    serving = isinstance(health, health_pb2.HealthCheckResponse) and health.status == SERVING
    answered = isinstance(response, pb.TranslateResponse) and (
        reference.matches(request, response) if reference else len(response.translations) == 2
    )
    TALLY.crashes += not (serving and answered)
    assert serving and answered, (health, response)
