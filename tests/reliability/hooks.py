"""Fault injection around the real engine: hold batches at the model, fail marked ones."""

from __future__ import annotations

import queue
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

from service.engine import Engine
from service.manifest import Manifest
from service.types import DecodeOptions, Translation

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
