"""A bounded soak: many concurrent clients, mixed batches and options, against the real engine."""

from __future__ import annotations

import asyncio
import os
import random
from collections import Counter
from contextlib import closing
from typing import Any

import grpc

from service.api.translation.v1 import translation_pb2 as pb
from service.api.translation.v1 import translation_pb2_grpc as pb_grpc
from service.decoding.engine import Engine
from tests.reliability.calls import TEXTS, Outcome, Reference, attempt, channel
from tests.reliability.tally import TALLY
from tests.service.harness import ServerThread

REQUESTS = int(os.environ.get("RELIABILITY_SOAK_REQUESTS", "12000"))  # ~60 s on two shared cores; the issue names 20000
CLIENTS = 64
MIXED = [*TEXTS, "", "  ", "Ünïcødé ✓", "cat, dog!"]
OPTIONS: list[dict[str, Any]] = [
    {},
    {"beam_size": 2},
    {"beam_size": 2, "n_best": 2, "return_scores": True},
    {"return_attention": True, "return_scores": True},
]


async def soak(address: str, reference: Reference, requests: int, clients: int) -> Counter[str]:
    """Sends `requests` from `clients` concurrent clients; counts how they ended."""
    ends: Counter[str] = Counter()

    async def client(number: int) -> None:
        rng = random.Random(number)
        async with channel(address) as connection:
            stub = pb_grpc.TranslatorStub(connection)
            for i in range(number, requests, clients):
                texts = rng.choices(MIXED, k=rng.randint(1, 8))
                request = pb.TranslateRequest(id=f"{number}/{i}", texts=texts, **rng.choice(OPTIONS))
                ends[_end(request, await attempt(stub.Translate(request)), reference)] += 1

    await asyncio.gather(*(client(n) for n in range(clients)))
    return ends


def _end(request: pb.TranslateRequest, outcome: Outcome[pb.TranslateResponse], reference: Reference) -> str:
    """How a call ended: OK (with the engine's answer), RESOURCE_EXHAUSTED, lost, or wrong."""
    if outcome is None:
        return "lost"
    if isinstance(outcome, pb.TranslateResponse):
        return "OK" if reference.matches(request, outcome) else "wrong"
    if outcome.code() == grpc.StatusCode.RESOURCE_EXHAUSTED:
        return "RESOURCE_EXHAUSTED"
    TALLY.wrong += 1
    return "wrong"


def test_soak(engine: Engine, reference: Reference) -> None:
    with closing(ServerThread({"en-fr": engine}, max_queue_size=256)) as server:
        ends = asyncio.run(soak(server.address, reference, REQUESTS, CLIENTS))
    assert ends["OK"] + ends["RESOURCE_EXHAUSTED"] == REQUESTS, ends
    assert ends["OK"] > REQUESTS // 2, ends
