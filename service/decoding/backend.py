"""What the server needs from a translation model, and the set of models it serves by name."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Protocol

from service.errors import LanguagePairNotFound, ModelNotFound
from service.types import DecodeOptions, Translation


class ModelManifest(Protocol):
    """A model's identity, as its manifest states it."""

    @property
    def name(self) -> str: ...
    @property
    def version(self) -> str: ...
    @property
    def source_language(self) -> str: ...
    @property
    def target_language(self) -> str: ...


class TranslationBackend(Protocol):
    """A loaded model (service.decoding.engine.Engine, or a test double). `translate` is called off the event loop."""

    @property
    def manifest(self) -> ModelManifest: ...
    @property
    def provider(self) -> str: ...
    @property
    def explains(self) -> bool:
        """Whether the model can return every layer's and head's attention (DecodeOptions.attention_detail)."""
        ...

    @property
    def max_source_tokens(self) -> int:
        """The most source tokens (end-of-sentence included) the model takes in one text."""
        ...

    def translate(self, texts: Sequence[str], options: DecodeOptions) -> list[Translation]:
        """Translates a batch; the results are in input order."""
        ...

    def count_tokens(self, text: str) -> int:
        """Source subword tokens of `text`, end-of-sentence included."""
        ...


class ModelSet(Mapping[str, TranslationBackend]):
    """The served models by name, the default (for requests that name none) first: `default`, else the first."""

    def __init__(self, backends: Mapping[str, TranslationBackend], default: str = "") -> None:
        if not backends:
            raise ValueError("at least one model is needed")
        self.default = default or next(iter(backends))
        if self.default not in backends:
            raise ModelNotFound(self.default, backends)
        self._backends = {self.default: backends[self.default], **backends}

    def __getitem__(self, name: str) -> TranslationBackend:
        return self._backends[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._backends)

    def __len__(self) -> int:
        return len(self._backends)

    def resolve(self, name: str) -> str:
        """The served model a request's `model` field means; raises ModelNotFound listing them all."""
        resolved = name or self.default
        if resolved not in self._backends:
            raise ModelNotFound(name, self._backends)
        return resolved

    def for_pair(self, source: str, target: str) -> str:
        """The first served model (the default first) translating `source` to `target`; raises
        LanguagePairNotFound listing the served pairs."""
        for name, backend in self._backends.items():
            if (backend.manifest.source_language, backend.manifest.target_language) == (source, target):
                return name
        raise LanguagePairNotFound(source, target, self.pairs())

    def pairs(self) -> list[str]:
        """The served language pairs, "en->fr (model en-fr)"."""
        return [
            f"{b.manifest.source_language}->{b.manifest.target_language} (model {name})"
            for name, b in self._backends.items()
        ]

    def label(self, name: str) -> str:
        """The metrics label for a requested name: the model's name, or "" for an unknown one."""
        resolved = name or self.default
        return resolved if resolved in self._backends else ""
