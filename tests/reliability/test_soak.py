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
from service.engine import Engine
from tests.reliability.calls import TEXTS, Reference, attempt, channel, code
from tests.service.harness import ServerThread

REQUESTS = int(os.environ.get("RELIABILITY_SOAK_REQUESTS", "8000"))
CLIENTS = 64
MIXED = [*TEXTS, "", "  ", "Ünïcødé ✓", "cat, dog!"]
OPTIONS: list[dict[str, Any]] = [
    {},
    {"beam_size": 2},
    {"beam_size": 2, "n_best": 2, "return_scores": True},
    {"return_attention": True, "return_scores": True},
]
EXPECTED = {grpc.StatusCode.OK, grpc.StatusCode.RESOURCE_EXHAUSTED}


async def soak(address: str, reference: Reference, requests: int, clients: int) -> Counter[str]:
    """Sends `requests` from `clients` concurrent clients; counts how they ended (wrong: OK with a bad answer)."""
    ends: Counter[str] = Counter()

    async def client(number: int) -> None:
        rng = random.Random(number)
        async with channel(address) as connection:
            stub = pb_grpc.TranslatorStub(connection)
            for i in range(number, requests, clients):
                texts = rng.choices(MIXED, k=rng.randint(1, 8))
                request = pb.TranslateRequest(id=f"{number}/{i}", texts=texts, **rng.choice(OPTIONS))
                outcome = await attempt(stub.Translate(request))
                status = code(outcome)
                if isinstance(outcome, pb.TranslateResponse) and not reference.matches(request, outcome):
                    ends["wrong"] += 1
                else:
                    ends[status.name if status in EXPECTED else "lost" if status is None else "wrong"] += 1

    await asyncio.gather(*(client(n) for n in range(clients)))
    return ends


def test_soak(engine: Engine, reference: Reference) -> None:
    with closing(ServerThread({"en-fr": engine}, max_queue_size=256)) as server:
        ends = asyncio.run(soak(server.address, reference, REQUESTS, CLIENTS))
    assert ends["OK"] + ends["RESOURCE_EXHAUSTED"] == REQUESTS, ends
    assert ends["OK"] > REQUESTS // 2, ends
