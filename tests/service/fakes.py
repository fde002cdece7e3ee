"""A test double of the translation engine: "translates" by reversing the words of a text."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from service.types import DecodeOptions, Hypothesis, Translation


def _open_gate() -> threading.Event:
    gate = threading.Event()
    gate.set()
    return gate


@dataclass(frozen=True)
class FakeManifest:
    name: str
    version: str = "1"
    source_language: str = "en"
    target_language: str = "fr"


@dataclass
class ReversingBackend:
    """Word-reversing model: tokens are whitespace-separated words (+1 for end of sentence).

    `delay` seconds per batch; a text containing `fail_on` makes its whole batch raise; while `gate`
    is clear (pass `threading.Event()`), batches block on it. `batches` records the texts of every batch.
    Like the engine, it fails a batch holding a text of more than `max_source_tokens` tokens.
    """

    name: str = "en-fr"
    target_language: str = "fr"
    delay: float = 0.0
    fail_on: str | None = None
    gate: threading.Event = field(default_factory=_open_gate)
    provider: str = "CPUExecutionProvider"
    max_source_tokens: int = 1024
    explains: bool = False  # no attention-detail graph
    batches: list[list[str]] = field(default_factory=list)

    @property
    def manifest(self) -> FakeManifest:
        return FakeManifest(self.name, target_language=self.target_language)

    def count_tokens(self, text: str) -> int:
        return len(text.split()) + 1

    def translate(self, texts: Sequence[str], options: DecodeOptions) -> list[Translation]:
        self.batches.append(list(texts))
        self.gate.wait(timeout=10)
        time.sleep(self.delay)
        if self.fail_on is not None and any(self.fail_on in text for text in texts):
            raise RuntimeError(f"/secret/path/model.onnx: failed on {self.fail_on!r}")
        if any(self.count_tokens(text) > self.max_source_tokens for text in texts):
            raise ValueError(f"a text has more than {self.max_source_tokens} tokens")
        return [self._translate(text, options) for text in texts]

    def _translate(self, text: str, options: DecodeOptions) -> Translation:
        source = text.split() + ["</s>"]
        hypotheses = []
        for rank in range(options.n_best):
            target = text.split()[::-1] + [f"#{rank}"] * (rank > 0)
            attention = None
            if options.return_attention:
                attention = np.full((len(target), len(source)), 1.0 / len(source), dtype=np.float32)
            ids = list(range(len(target)))
            hypotheses.append(Hypothesis(" ".join(target), ids, target, -1.0 - rank, attention))
        return Translation(source_tokens=source, hypotheses=hypotheses)


def reverse(text: str) -> str:
    """What ReversingBackend's best hypothesis for `text` is."""
    return " ".join(text.split()[::-1])
