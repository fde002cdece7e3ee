"""Fault injection around the real engine: hold batches at the model, fail marked ones; scenarios run on it."""

from __future__ import annotations

import asyncio
import queue
import tempfile
import threading
from collections.abc import Awaitable, Callable, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from typing import Any

from service.api.translation.v1 import translation_pb2 as pb
from service.api.translation.v1 import translation_pb2_grpc as pb_grpc
from service.decoding.engine import Engine
from service.decoding.manifest import Manifest
from service.types import DecodeOptions, Translation
from tests.reliability.calls import TEXTS, Reference, assert_serving, attempt, channel, until
from tests.service.harness import ServerThread

FAULT = f"injected fault in {tempfile.gettempdir()}/models/en-fr/encoder.onnx"  # a server path a client must not see


@dataclass
class HookedEngine:
    """A TranslationBackend that runs the real engine, with hooks.

    While `gated`, each batch goes to `started` and waits for a permit (`admit`) before it runs. A batch
    holding a text that contains `poison` raises instead of translating. `batches` records every batch.
    """

    engine: Engine
    poison: str | None = None
    gated: bool = False
    started: queue.Queue[list[str]] = field(default_factory=queue.Queue)
    batches: list[list[str]] = field(default_factory=list)
    _permits: threading.Semaphore = field(default_factory=lambda: threading.Semaphore(0))

    @property
    def manifest(self) -> Manifest:
        return self.engine.manifest

    @property
    def provider(self) -> str:
        return self.engine.provider

    @property
    def max_source_tokens(self) -> int:
        return self.engine.max_source_tokens

    def count_tokens(self, text: str) -> int:
        return self.engine.count_tokens(text)

    def admit(self, batches: int = 1) -> None:
        """Lets `batches` more batches run while gated."""
        self._permits.release(batches)

    def next_batch(self, timeout: float = 10) -> list[str]:
        """The texts of the next batch that reached the model while gated."""
        return self.started.get(timeout=timeout)

    def translate(self, texts: Sequence[str], options: DecodeOptions) -> list[Translation]:
        self.batches.append(list(texts))
        if self.gated:
            self.started.put(list(texts))
            if not self._permits.acquire(timeout=30):
                raise TimeoutError("the test admitted no batch")
        if self.poison is not None and any(self.poison in text for text in texts):
            raise RuntimeError(FAULT)
        return self.engine.translate(texts, options)


Scenario = Callable[[ServerThread, HookedEngine, pb_grpc.TranslatorStub], Awaitable[None]]


def run_held(engine: Engine, reference: Reference, scenario: Scenario, **settings: Any) -> HookedEngine:
    """Runs `scenario` against a server whose model is busy with a first batch until the scenario admits it;
    then checks that the server still serves."""
    backend = HookedEngine(engine, poison=settings.pop("poison", None))
    with closing(ServerThread({"en-fr": backend}, **settings)) as server:
        backend.gated = True

        async def main() -> None:
            async with channel(server.address) as connection:
                stub = pb_grpc.TranslatorStub(connection)
                first = pb.TranslateRequest(id="first", texts=[TEXTS[0]])
                busy = asyncio.ensure_future(attempt(stub.Translate(first)))
                assert await asyncio.to_thread(backend.next_batch) == [TEXTS[0]]
                await scenario(server, backend, stub)
                outcome = await busy
                assert isinstance(outcome, pb.TranslateResponse) and reference.matches(first, outcome)
            backend.gated = False
            await until(lambda: server.depth() == 0)
            await assert_serving(server.address, reference)

        asyncio.run(main())
    return backend
