"""Bad input: fuzzed requests, malformed bytes and oversized messages each get their status; the server goes on."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from service.api.translation.v1 import translation_pb2 as pb
from service.api.translation.v1 import translation_pb2_grpc as pb_grpc
from service.client import TranslatorClient
from service.client import main as client_main
from service.engine import Engine
from tests.reliability.calls import TEXTS, Reference, attempt, channel, send, until
from tests.reliability.hooks import HookedEngine, run_held
from tests.reliability.tally import TALLY
from tests.service.harness import ServerThread


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


def test_a_text_longer_than_the_model_takes_is_refused_alone(engine: Engine, reference: Reference) -> None:
    """Within the server's token limit but over the model's: INVALID_ARGUMENT for it, not a failed batch."""
    fine = pb.TranslateRequest(id="fine", texts=TEXTS[1:3])
    too_long = pb.TranslateRequest(id="long", texts=[TEXTS[3], "cat " * engine.max_source_tokens])

    async def scenario(server: ServerThread, backend: HookedEngine, stub: pb_grpc.TranslatorStub) -> None:
        refused, answered = send(stub, too_long), send(stub, fine)
        await until(lambda: server.depth() == 2 and refused.done() or server.depth() == 4)
        backend.admit(2)
        outcome = await refused
        assert isinstance(outcome, grpc.aio.AioRpcError) and outcome.code() == grpc.StatusCode.INVALID_ARGUMENT
        max_tokens = engine.max_source_tokens
        expected = f"texts[1] has {max_tokens + 1} tokens; at most {max_tokens} are allowed by model en-fr"
        assert outcome.details() == expected
        response = await answered
        assert isinstance(response, pb.TranslateResponse) and reference.matches(fine, response)

    run_held(engine, reference, scenario)
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
