"""Faults around requests in flight, in-process: a cancelling caller, expired deadlines, a failing batch."""

from __future__ import annotations

import asyncio
import random

import grpc
import pytest

from service.api.translation.v1 import translation_pb2 as pb
from service.api.translation.v1 import translation_pb2_grpc as pb_grpc
from service.decoding.engine import Engine
from tests.reliability.calls import TEXTS, Reference, attempt, code, send, until
from tests.reliability.hooks import HookedEngine, run_held
from tests.reliability.tally import TALLY
from tests.service.harness import ServerThread


def test_a_caller_cancelling_mid_batch_does_not_disturb_the_others(engine: Engine, reference: Reference) -> None:
    requests = [pb.TranslateRequest(id=str(i), texts=TEXTS[1 + 3 * i : 4 + 3 * i]) for i in range(5)]

    async def scenario(server: ServerThread, backend: HookedEngine, stub: pb_grpc.TranslatorStub) -> None:
        calls = [stub.Translate(request) for request in requests]
        leaving = calls.pop(2)
        others = [asyncio.ensure_future(attempt(call)) for call in calls]
        await until(lambda: server.depth() == 15)
        backend.admit()  # the first batch; the next one holds every request's texts
        batch = await asyncio.to_thread(backend.next_batch)
        assert sorted(batch) == sorted(TEXTS[1:16])
        leaving.cancel()
        cancelled = {"method": "Translate", "model": "en-fr", "code": "CANCELLED"}
        await until(lambda: server.sample("mt_requests_total", cancelled) == 1)
        backend.admit()
        with pytest.raises(asyncio.CancelledError):
            await leaving
        TALLY.count(grpc.StatusCode.CANCELLED)
        for request, outcome in zip(requests[:2] + requests[3:], await asyncio.gather(*others), strict=True):
            assert isinstance(outcome, pb.TranslateResponse) and reference.matches(request, outcome)

    run_held(engine, reference, scenario)


def test_a_burst_of_expiring_deadlines(engine: Engine, reference: Reference) -> None:
    """Calls whose deadline passes while the model is busy end DEADLINE_EXCEEDED and are never computed;
    patient calls queued among them are answered."""
    rng = random.Random(3)
    late = [pb.TranslateRequest(id=f"late {i}", texts=[text]) for i, text in enumerate(TEXTS[1:81])]
    patient = [pb.TranslateRequest(id=f"patient {i}", texts=[text]) for i, text in enumerate(TEXTS[81:101])]

    async def scenario(server: ServerThread, backend: HookedEngine, stub: pb_grpc.TranslatorStub) -> None:
        waiting = [send(stub, request, timeout=60) for request in patient]
        expired = await asyncio.gather(*(send(stub, request, timeout=rng.uniform(0, 0.3)) for request in late))
        assert {code(outcome) for outcome in expired} == {grpc.StatusCode.DEADLINE_EXCEEDED}
        await until(lambda: server.depth() == len(patient))
        backend.admit(1 + len(patient))
        for request, outcome in zip(patient, await asyncio.gather(*waiting), strict=True):
            assert isinstance(outcome, pb.TranslateResponse) and reference.matches(request, outcome)
        computed = {text for batch in backend.batches for text in batch}
        assert computed.isdisjoint(TEXTS[1:81])

    run_held(engine, reference, scenario)


POISON = "poison"


def test_a_failing_batch_fails_only_its_own_requests(engine: Engine, reference: Reference) -> None:
    """An inference error answers the requests of that batch INTERNAL, with no detail; other batches succeed."""
    rng = random.Random(5)
    requests = [
        pb.TranslateRequest(id=str(i), texts=TEXTS[4 * i : 4 * i + rng.randint(1, 4)], beam_size=1 + i % 2)
        for i in range(1, 25)
    ]
    requests[9].texts.append(f"{POISON} {TEXTS[0]}")

    async def scenario(server: ServerThread, backend: HookedEngine, stub: pb_grpc.TranslatorStub) -> None:
        calls = [send(stub, r, metadata=[("x-request-id", f"req-{r.id}")]) for r in requests]
        await until(lambda: server.depth() == sum(len(r.texts) for r in requests))
        backend.gated = False
        backend.admit()
        outcomes = dict(zip((r.id for r in requests), await asyncio.gather(*calls), strict=True))
        poisoned = {text for batch in backend.batches if any(POISON in t for t in batch) for text in batch}
        failed = {r.id for r in requests if poisoned.intersection(r.texts)}
        assert requests[9].id in failed and len(failed) < len(requests) // 2
        for request in requests:
            outcome = outcomes[request.id]
            if request.id in failed:
                assert isinstance(outcome, grpc.aio.AioRpcError) and outcome.code() == grpc.StatusCode.INTERNAL
                assert outcome.details() == f"internal error; request id req-{request.id}"
            else:
                assert isinstance(outcome, pb.TranslateResponse) and reference.matches(request, outcome)

    run_held(engine, reference, scenario, poison=POISON, max_batch_size=6)
