"""Bad input: fuzzed requests, malformed bytes and oversized messages each get their status; the server goes on."""

from __future__ import annotations

import asyncio
import math
from contextlib import closing
from typing import Any, TypeVar

import grpc
import pytest
from google.protobuf.message import DecodeError, Message
from grpc_health.v1 import health_pb2
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.api.translation.v1 import translation_pb2 as pb
from service.api.translation.v1 import translation_pb2_grpc as pb_grpc
from service.client import TranslatorClient, translate_request
from service.client import main as client_main
from service.config import Settings
from service.decoding.engine import Engine
from service.text.language import DETECTOR
from service.text.markup import parse
from service.validation import MAX_NO_REPEAT_NGRAM_SIZE
from tests.reliability.calls import (
    TEXTS,
    Outcome,
    Reference,
    assert_serving,
    attempt,
    channel,
    code,
    collect,
    inline,
    raw,
)
from tests.reliability.tally import TALLY
from tests.service.harness import ServerThread

TRANSLATE = "/translation.v1.Translator/Translate"

INVALID, NOT_FOUND = grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND
ODD_TEXTS = [
    "",
    " \t\n ",
    "\x00",
    "nul\x00inside",
    "\x1b[31mred\x07",
    "e\u0301\u0302\u0303",
    "\u202eevil\u202c",
    "مرحبا بالعالم",
    "😀🇫🇷👩‍👩‍👧",
    "\u200b",
    "\ufeff",
    "a\ud800b",
    "\udfff",
    "x" * 2000,
    "x" * 2001,
    "cat " * 70,
    *TEXTS[:5],
]
MODELS = [
    "",
    "en-fr",
    "EN-FR",
    "en-fr ",
    "../../etc/passwd",
    "/etc",
    "en-fr/../x",
    "./en-fr",
    "en-fr/",
    "..",
]
UNKNOWN_FORMATS = [2, 7, -1, 2**31 - 1, -(2**31)]
ANY_TEXT = st.text(st.characters(exclude_categories=()) | st.characters(categories=["Cs"]), max_size=30)
# Over the request's character limit, built when drawn (a repr this long is slow). Long words within the limit
# are cut and translated in many parts: test_a_text_longer_than_the_model_takes_is_translated_in_parts.
LONG_WORDS = st.sampled_from("aé😀").map(lambda c: c * 100_001)
UINT32 = st.integers(0, 12) | st.sampled_from([2**31, 2**32 - 1])
CASES = st.fixed_dictionaries(
    {
        "texts": st.lists(ANY_TEXT | st.sampled_from(ODD_TEXTS) | LONG_WORDS, max_size=6)
        | st.lists(st.sampled_from(TEXTS), min_size=65, max_size=80)
        | st.just(10_000).map(lambda n: ["cat"] * n),
        "model": st.sampled_from(MODELS) | st.text(max_size=20) | st.just(100_000).map(lambda n: "x" * n),
        "beam_size": UINT32,
        "n_best": UINT32,
        "max_length": st.integers(0, 600) | st.just(2**32 - 1),
        "length_penalty": st.floats(width=32),
        "return_scores": st.booleans(),
        "return_attention": st.booleans(),
        "format": st.sampled_from([pb.TEXT_FORMAT_PLAIN, pb.TEXT_FORMAT_HTML]) | st.sampled_from(UNKNOWN_FORMATS),
        "no_repeat_ngram_size": st.none() | st.integers(0, 17) | st.just(2**32 - 1),
        "source_language": st.sampled_from(["", "", "en", "fr"]) | st.text(max_size=4),
        "target_language": st.sampled_from(["", "", "fr", "de"]) | st.text(max_size=4),
        "strict_language": st.booleans(),
    }
)


def problems(request: pb.TranslateRequest, limits: Settings, engine: Engine) -> list[tuple[grpc.StatusCode, str]]:
    """What is wrong with a request, per the API's documented limits: (status, start of the message)."""
    found = []
    texts = request.texts
    if not texts:
        found.append((INVALID, "texts is empty"))
    if len(texts) > limits.max_texts_per_request:
        found.append((INVALID, f"{len(texts)} texts in one request"))
    if request.model not in ("", engine.manifest.name):
        found.append((NOT_FOUND, "unknown model"))
    pair = (request.source_language, request.target_language)
    if any(pair) and not all(pair):
        found.append((INVALID, "source_language and target_language go together"))
    elif any(pair) and pair != (engine.manifest.source_language, engine.manifest.target_language):
        found.append((NOT_FOUND, f"no model translates {pair[0][:128]!r}"))
    beam_size, n_best, penalty = request.beam_size or 1, request.n_best or 1, request.length_penalty or 1.0
    if beam_size > limits.max_beam_size:
        found.append((INVALID, f"beam_size is {beam_size}"))
    if n_best > min(beam_size, limits.max_n_best):
        found.append((INVALID, f"n_best is {n_best}"))
    if request.max_length > limits.max_length_limit:
        found.append((INVALID, f"max_length is {request.max_length}"))
    if not (math.isfinite(penalty) and 0 < penalty <= 5):
        found.append((INVALID, "length_penalty is"))
    if request.format not in (pb.TEXT_FORMAT_PLAIN, pb.TEXT_FORMAT_HTML):
        found.append((INVALID, f"format is {request.format}; it must be one of"))
    html = request.format == pb.TEXT_FORMAT_HTML
    if html and request.return_attention:
        found.append((INVALID, "return_attention is not available with format TEXT_FORMAT_HTML"))
    size = request.no_repeat_ngram_size
    if request.HasField("no_repeat_ngram_size") and (size == 1 or size > MAX_NO_REPEAT_NGRAM_SIZE):
        found.append((INVALID, f"no_repeat_ngram_size is {size}"))
    plain = list(texts)
    chars = sum(map(len, texts))
    if chars > limits.max_request_chars:
        found.append((INVALID, f"the texts have {chars} characters in all"))
    elif len(texts) <= limits.max_texts_per_request and html:
        most_tokens, pages = min(limits.max_text_tokens, engine.max_source_tokens), [parse(text) for text in texts]
        for i, page in enumerate(pages):
            blocks = [engine.count_tokens(block.source) for block in page.blocks]
            found += [(INVALID, f"texts[{i}] has a block of {n} tokens") for n in blocks if n > most_tokens]
        if (blocks_in_all := sum(len(page.blocks) for page in pages)) > limits.max_queue_size:
            found.append((INVALID, f"the texts have {blocks_in_all} blocks in all"))
        plain = [" ".join(block.source for block in page.blocks) for page in pages]
    elif len(texts) <= limits.max_texts_per_request:
        sentences = sum(len(Reference(engine).document(text).sentences) for text in texts if text.strip())
        if sentences > limits.max_queue_size:
            found.append((INVALID, f"the texts have {sentences} sentences in all"))
    for i, text in enumerate(plain):
        detected = DETECTOR.detect(text)
        mismatch = detected.language not in ("", engine.manifest.source_language)
        if request.strict_language and mismatch and detected.confidence >= limits.language_mismatch_confidence:
            found.append((INVALID, f"texts[{i}] seems to be in"))
    return found


def answers_html(request: pb.TranslateRequest, response: pb.TranslateResponse, engine: Engine) -> bool:
    """Whether `response` answers the HTML `request`: one translation per text, with at least one hypothesis and
    no attention; a text without words comes back as the parser repaired it."""
    right = (
        response.id == request.id
        and response.model == (request.model or engine.manifest.name)
        and len(response.translations) == len(request.texts)
        and all(
            t.hypotheses
            and not t.source_tokens
            and not any(h.HasField("attention") for h in t.hypotheses)
            and (bool(document.blocks) or [h.text for h in t.hypotheses] == [document.render([])])
            for t, document in zip(response.translations, map(parse, request.texts), strict=True)
        )
    )
    TALLY.wrong += not right
    return right


def said(request: pb.TranslateRequest) -> list[str]:
    """What a request says that an error message may repeat."""
    return [request.model, request.source_language, request.target_language]


class Judge:
    """Checks each answer against what the request deserves."""

    def __init__(self, server: ServerThread, engine: Engine, reference: Reference) -> None:
        self.server, self.engine, self.reference = server, engine, reference

    def __call__(self, request: pb.TranslateRequest, status: grpc.StatusCode | None, message: str) -> None:
        """OK for a request without problems, else the status and message of one of its problems."""
        wrong = problems(request, self.server.settings, self.engine)
        right = any(status == c and message.startswith(m) for c, m in wrong) if wrong else status == grpc.StatusCode.OK
        TALLY.wrong += not right
        assert right, (status, message, wrong)

    def unary(self, request: pb.TranslateRequest, outcome: Outcome[pb.TranslateResponse]) -> None:
        message = (outcome.details() or "") if isinstance(outcome, grpc.aio.AioRpcError) else ""
        self(request, code(outcome), message)
        if isinstance(outcome, pb.TranslateResponse):
            assert self.answers(request, outcome)

    def inline(self, request: pb.TranslateRequest, response: pb.TranslateResponse) -> None:
        status = inline(response, said(request))
        self(request, status, response.status.message)
        if status == grpc.StatusCode.OK:
            assert self.answers(request, response)

    def answers(self, request: pb.TranslateRequest, response: pb.TranslateResponse) -> bool:
        """The engine's answer to a plain request; the answer's shape for an HTML one."""
        if request.format == pb.TEXT_FORMAT_HTML:
            return answers_html(request, response, self.engine)
        return self.reference.matches(request, response)


def build(case: dict[str, Any], number: int) -> pb.TranslateRequest | None:
    """The request, made by the client layer; None when it refuses text that protobuf cannot carry."""
    TALLY.bad_inputs += 1
    try:
        return translate_request(id=str(number), **case)
    except ValueError as error:
        assert "surrogate" in str(error) and any(0xD800 <= ord(c) <= 0xDFFF for t in case["texts"] for c in t)
        return None


@settings(
    max_examples=100,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
)
@given(cases=st.lists(CASES, min_size=1, max_size=6))
def test_fuzzed_requests(
    server: ServerThread, engine: Engine, reference: Reference, cases: list[dict[str, Any]]
) -> None:
    """Each request gets its status (and, if OK, the engine's answer), alone and in a stream; the server goes on."""
    judge = Judge(server, engine, reference)
    requests = [r for r in (build(case, i) for i, case in enumerate(cases)) if r is not None]

    async def main() -> None:
        async with channel(server.address) as connection:
            stub = pb_grpc.TranslatorStub(connection)
            outcomes = await asyncio.gather(*(attempt(stub.Translate(r), said=said(r)) for r in requests))
            for request, outcome in zip(requests, outcomes, strict=True):
                judge.unary(request, outcome)
            outcome = await attempt(collect(stub.TranslateStream(iter(requests))))
            assert isinstance(outcome, list)
            responses = {r.id: r for r in outcome}
            assert sorted(responses) == sorted(r.id for r in requests)
            for request in requests:
                judge.inline(request, responses[request.id])
        await assert_serving(server.address, reference)

    asyncio.run(main())


TRANSLATE_STREAM = "/translation.v1.Translator/TranslateStream"
OTHER_METHODS: dict[str, type[Message]] = {
    "/translation.v1.Translator/ListModels": pb.ListModelsRequest,
    "/grpc.health.v1.Health/Check": health_pb2.HealthCheckRequest,
}
GARBAGE = st.binary(max_size=48) | st.sampled_from(
    [b"\xff\xff\xff", b"\x0a\x02\xff\xfe", b"\x0a\xff\xff\xff\xff\x0f", b"\x0a\x05ab", b"\x12\x03\xc3\x28x"]
)
M = TypeVar("M", bound=Message)


def parsed(message_type: type[M], data: bytes) -> M | None:
    try:
        return message_type.FromString(data)
    except DecodeError:
        return None


def assert_malformed(outcome: Outcome[Any], method: str) -> None:
    assert isinstance(outcome, grpc.aio.AioRpcError) and outcome.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert outcome.details() == f"the request is not a valid protobuf message for {method}"


@settings(max_examples=60, deadline=None, database=None)
@given(payloads=st.lists(GARBAGE, min_size=1, max_size=4))
def test_malformed_bytes(server: ServerThread, engine: Engine, reference: Reference, payloads: list[bytes]) -> None:
    """Bytes that do not parse are INVALID_ARGUMENT on every method, alone or in a stream; bytes that parse are
    a request like any other."""
    judge = Judge(server, engine, reference)

    async def main() -> None:
        async with channel(server.address) as connection:
            for data in payloads:
                TALLY.bad_inputs += 1
                request = parsed(pb.TranslateRequest, data)
                outcome = await attempt(raw(connection, TRANSLATE)(data), said=said(request) if request else [])
                if request is None:
                    assert_malformed(outcome, TRANSLATE)
                else:
                    response = pb.TranslateResponse.FromString(outcome) if isinstance(outcome, bytes) else outcome
                    judge.unary(request, response)
                for method, message_type in OTHER_METHODS.items():
                    outcome = await attempt(raw(connection, method)(data))
                    if parsed(message_type, data) is None:
                        assert_malformed(outcome, method)
                    else:
                        assert code(outcome) in (grpc.StatusCode.OK, grpc.StatusCode.NOT_FOUND)
            # The stream ends at its first malformed message: grpc fails a client still writing after that
            # with its own INTERNAL "Internal error from Core", so nothing more is sent.
            good = [parsed(pb.TranslateRequest, data) is not None for data in payloads]
            sent = payloads if all(good) else payloads[: good.index(False) + 1]
            stream: grpc.aio.StreamStreamMultiCallable[bytes, bytes] = connection.stream_stream(TRANSLATE_STREAM)
            responses = await attempt(collect(stream(iter(sent))))
            if all(good):
                assert isinstance(responses, list) and len(responses) == len(payloads)
            else:
                assert_malformed(responses, TRANSLATE_STREAM)
        await assert_serving(server.address, reference)

    asyncio.run(main())


def test_text_protobuf_cannot_carry_is_refused_by_the_client(
    server: ServerThread, capsys: pytest.CaptureFixture[str]
) -> None:
    """A lone surrogate (what undecodable bytes in an argument become) is a clear client error; nothing is sent."""
    before = server.sample("mt_requests_total", {"method": "Translate", "model": "en-fr", "code": "OK"})
    message = r"texts\[1\] is not valid Unicode: surrogates not allowed \('\\udcff' at position 3\)"
    with TranslatorClient(server.address) as client, pytest.raises(ValueError, match=message):
        client.translate(["fine", "bad\udcff"])
    assert client_main(["--address", server.address, "caf\udce9"]) == 1
    error = "error: texts[0] is not valid Unicode: surrogates not allowed ('\\udce9' at position 3)\n"
    assert capsys.readouterr().err == error
    assert server.sample("mt_requests_total", {"method": "Translate", "model": "en-fr", "code": "OK"}) == before
    TALLY.bad_inputs += 2


def test_a_text_longer_than_the_model_takes_is_translated_in_parts(server: ServerThread, reference: Reference) -> None:
    """Over the model's token limit: cut between words, every part translated, nothing refused or dropped."""
    too_long = "cat " * (2 * server.server.models["en-fr"].max_source_tokens)
    request = pb.TranslateRequest(id="long", texts=[TEXTS[3], too_long, "reddog" * 100])

    async def main() -> Outcome[pb.TranslateResponse]:
        async with channel(server.address) as connection:
            return await attempt(pb_grpc.TranslatorStub(connection).Translate(request))

    response = asyncio.run(main())
    assert isinstance(response, pb.TranslateResponse) and reference.matches(request, response)
    assert len(response.translations[1].segments) >= 2 and len(response.translations[2].segments) >= 2
    TALLY.bad_inputs += 1


def test_an_unknown_model_name_of_any_length_is_not_found(server: ServerThread) -> None:
    """The message repeats only the start of a long name: a whole one would exceed gRPC's metadata limit."""

    async def main() -> object:
        async with channel(server.address) as connection:
            stub = pb_grpc.TranslatorStub(connection)
            return await attempt(stub.Translate(pb.TranslateRequest(texts=["cat"], model="x" * 100_000)))

    outcome = asyncio.run(main())
    assert isinstance(outcome, grpc.aio.AioRpcError) and outcome.code() == grpc.StatusCode.NOT_FOUND
    assert outcome.details() == f"unknown model '{'x' * 128}…'; available models: en-fr"
    TALLY.bad_inputs += 1


def test_a_request_over_the_size_limit(server: ServerThread, reference: Reference) -> None:
    """RESOURCE_EXHAUSTED, alone or in a stream; the server goes on."""
    big = pb.TranslateRequest(id="big", texts=["cat " * 500] * (server.settings.max_message_bytes // 2000 + 1))
    assert big.ByteSize() > server.settings.max_message_bytes

    async def main() -> list[Outcome[Any]]:
        async with channel(server.address, options=[("grpc.max_send_message_length", -1)]) as connection:
            stub = pb_grpc.TranslatorStub(connection)
            outcomes = [await attempt(stub.Translate(big)), await attempt(collect(stub.TranslateStream(iter([big]))))]
        await assert_serving(server.address, reference)
        return outcomes

    assert [code(outcome) for outcome in asyncio.run(main())] == [grpc.StatusCode.RESOURCE_EXHAUSTED] * 2
    TALLY.bad_inputs += 2


def test_a_response_over_the_size_limit_is_refused_alone(engine: Engine, reference: Reference) -> None:
    """RESOURCE_EXHAUSTED saying why; in a stream, the other requests are still answered."""
    big = pb.TranslateRequest(id="big", texts=TEXTS[:64], beam_size=4, n_best=4, return_attention=True)
    small = pb.TranslateRequest(id="small", texts=TEXTS[:1])

    async def main(address: str) -> tuple[Outcome[pb.TranslateResponse], Outcome[list[pb.TranslateResponse]]]:
        async with channel(address) as connection:
            stub = pb_grpc.TranslatorStub(connection)
            return await attempt(stub.Translate(big)), await attempt(collect(stub.TranslateStream(iter([big, small]))))

    with closing(ServerThread({"en-fr": engine}, max_message_bytes=32 * 1024)) as server:
        alone, streamed = asyncio.run(main(server.address))
    why = "the response would be "
    assert isinstance(alone, grpc.aio.AioRpcError) and alone.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert (alone.details() or "").startswith(why) and "ask for fewer texts" in (alone.details() or "")
    assert isinstance(streamed, list)
    responses = {response.id: response for response in streamed}
    assert inline(responses["big"]) == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert responses["big"].status.message.startswith(why)
    assert inline(responses["small"]) == grpc.StatusCode.OK and reference.matches(small, responses["small"])
    TALLY.bad_inputs += 2
