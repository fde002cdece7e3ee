"""Decode scheduling: which sentences the model computes on at each decoder step (see scheduler.py)."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Protocol, cast, runtime_checkable

from service.config import Settings
from service.decoding.backend import TranslationBackend
from service.scheduling.batcher import Batcher, BatchKey, BatchLimits, Item
from service.scheduling.cohort import StepBackend
from service.scheduling.scheduler import Scheduler, SchedulerLimits
from service.telemetry.metrics import Metrics
from service.types import Translation

__all__ = ["Scheduler", "SchedulerLimits", "SentenceScheduler", "make_scheduler"]

log = logging.getLogger(__name__)


class SentenceScheduler(Protocol):
    """Takes the sentences of requests to their models: Scheduler (continuous) or Batcher (per request)."""

    last_active: float

    def depth(self, model: str) -> int: ...
    async def submit(
        self, items: Sequence[Item], key: BatchKey, deadline: float | None = None
    ) -> list[Translation]: ...
    async def close(self, timeout: float | None = None) -> None: ...


@runtime_checkable
class _Steppable(Protocol):
    """A model that can be decoded step by step (has StepBackend's methods)."""

    def source_ids(self, text: str) -> list[int]: ...
    def encode(self, *args: object) -> object: ...
    def merges(self, *args: object) -> object: ...
    def new_search(self, *args: object) -> object: ...
    def max_lengths(self, *args: object) -> object: ...
    def translation(self, *args: object) -> object: ...


def make_scheduler(
    settings: Settings, backends: Mapping[str, TranslationBackend], metrics: Metrics
) -> SentenceScheduler:
    """The scheduler `settings.scheduler` names; models that cannot be stepped (test doubles) get the batcher."""
    if settings.scheduler == "continuous":
        if all(isinstance(b, _Steppable) for b in backends.values()):
            steppable = cast(Mapping[str, StepBackend], backends)
            return Scheduler(steppable, SchedulerLimits.from_settings(settings), metrics)
        log.info("a model cannot be decoded step by step: using the request-level batcher")
    return Batcher(backends, BatchLimits.from_settings(settings), metrics)
