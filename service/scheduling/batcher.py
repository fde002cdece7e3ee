"""Dynamic batching: merges the sentences of concurrent requests into model calls.

Each model has a lane: a queue of waiting sentences and one worker thread that runs its batches
(onnxruntime releases the GIL, so the event loop stays free). Only sentences with equal keys (same
model and DecodeOptions) share a batch.

Batching policy ("hold for company only under load"):

* A batch is bounded by `max_batch_size` sentences and `max_batch_tokens` padded source tokens
  (sentences x longest sentence: what the model computes on, padding included).
* It always holds the oldest waiting sentence (so nothing starves) and is filled with the waiting
  sentences of the same key closest to it in token count, so similar lengths share a batch.
* While the worker runs a batch, new sentences wait. When it is free, the next batch starts at once
  if it is full (a sentence of its key was left out, or it has `max_batch_size` sentences), or if no
  request in it arrived under load, or once its oldest sentence has waited `max_queue_delay`.
  A request arrives under load when the worker is busy or others are already waiting.
  So a lone request on an idle model is dispatched immediately (light load pays no delay), and under
  load a batch waits at most `max_queue_delay` for company.

The queue of a model holds at most `max_queue_size` waiting sentences: a request that would exceed it
is refused at once (QueueFull). A request whose deadline passes while it waits is dropped before
compute (DeadlineExceeded); a cancelled caller's waiting sentences leave the queue, and results of a
batch already running for it are discarded. An inference error fails only the requests in that
batch. Every accepted request ends with its results or an exception, also on `close()`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import math
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from service.config import Settings
from service.decoding.backend import TranslationBackend
from service.errors import DeadlineExceeded, Draining, ModelNotFound, QueueFull
from service.telemetry.metrics import Metrics
from service.types import DecodeOptions, Translation

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BatchKey:
    """What sentences must share to be translated in one batch."""

    model: str
    options: DecodeOptions


@dataclass(frozen=True)
class Item:
    """One sentence to translate and its source token count."""

    text: str
    tokens: int


@dataclass(frozen=True)
class BatchLimits:
    """Bounds of batches and queues; see the module docstring."""

    max_batch_size: int = 32
    max_batch_tokens: int = 4096
    max_queue_delay_s: float = 0.005
    max_queue_size: int = 1024

    @classmethod
    def from_settings(cls, settings: Settings) -> BatchLimits:
        return cls(
            max_batch_size=settings.max_batch_size,
            max_batch_tokens=settings.max_batch_tokens,
            max_queue_delay_s=settings.max_queue_delay_ms / 1000,
            max_queue_size=settings.max_queue_size,
        )


class _Request:
    """One submit call: where its results go, and how many are still missing."""

    def __init__(self, key: BatchKey, size: int, deadline: float | None, under_load: bool) -> None:
        self.key = key
        self.deadline = deadline
        self.under_load = under_load
        self.results: list[Translation | None] = [None] * size
        self.missing = size
        self.future: asyncio.Future[list[Translation]] = asyncio.get_running_loop().create_future()

    def deliver(self, index: int, result: Translation) -> None:
        if self.future.done():
            return  # the caller went away or the request already failed: discard
        self.results[index] = result
        self.missing -= 1
        if self.missing == 0:
            self.future.set_result([r for r in self.results if r is not None])

    def fail(self, exc: BaseException) -> None:
        if not self.future.done():
            self.future.set_exception(exc)


@dataclass(eq=False)
class _Entry:
    """A waiting sentence."""

    request: _Request
    index: int
    item: Item
    seq: int
    enqueued: float = field(default_factory=time.monotonic)


class _Lane:
    """The queue and worker of one model."""

    def __init__(self, name: str, backend: TranslationBackend, limits: BatchLimits, metrics: Metrics) -> None:
        self.name = name
        self.backend = backend
        self.limits = limits
        self.metrics = metrics
        self.waiting: list[_Entry] = []  # oldest first
        self.busy = False
        self.closing = False
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"mt-{name}")
        self._wakeup = asyncio.Event()
        self._worker: asyncio.Task[None] | None = None
        metrics.queue_capacity.labels(name).set(limits.max_queue_size)
        self._update_depth()

    def enqueue(self, request: _Request, items: Sequence[Item], seq: itertools.count[int]) -> None:
        self.waiting.extend(_Entry(request, i, item, next(seq)) for i, item in enumerate(items))
        self._update_depth()
        if self._worker is None or self._worker.done():
            self._worker = asyncio.get_running_loop().create_task(self._run(), name=f"batcher-{self.name}")
        self._wakeup.set()

    def withdraw(self, request: _Request) -> None:
        """Removes the request's waiting sentences (its caller is gone or it failed)."""
        self.waiting = [e for e in self.waiting if e.request is not request]
        self._update_depth()

    async def drain(self) -> None:
        """Completes every accepted sentence, then stops the worker."""
        self.closing = True
        self._wakeup.set()
        if self._worker is not None:
            await asyncio.shield(self._worker)

    def abort(self, exc: BaseException) -> None:
        """Fails whatever is still waiting or running and stops the worker."""
        self._fail_waiting(exc)
        if self._worker is not None:
            self._worker.cancel()
        self.executor.shutdown(wait=False, cancel_futures=True)

    def _fail_waiting(self, exc: BaseException) -> None:
        for entry in self.waiting:
            entry.request.fail(exc)
        self.waiting.clear()
        self._update_depth()

    def _update_depth(self) -> None:
        self.metrics.queue_depth.labels(self.name).set(len(self.waiting))

    async def _run(self) -> None:
        try:
            while (batch := await self._next_batch()) is not None:
                await self._execute(batch)
        except Exception as exc:  # a bug here must not strand the waiting requests
            log.exception("batcher of model %s failed", self.name)
            self._fail_waiting(exc)

    async def _next_batch(self) -> list[_Entry] | None:
        """Waits until a batch should start (see the module docstring) and takes it off the queue."""
        while True:
            self._drop_expired()
            if not self.waiting:
                if self.closing:
                    return None
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            batch, full = self._candidate()
            oldest = self.waiting[0]
            hold_until = oldest.enqueued + self.limits.max_queue_delay_s
            under_load = any(e.request.under_load for e in batch)
            if full or not under_load or self.closing or time.monotonic() >= hold_until:
                taken = set(map(id, batch))
                self.waiting = [e for e in self.waiting if id(e) not in taken]
                self._update_depth()
                return batch
            self._wakeup.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), hold_until - time.monotonic())

    def _candidate(self) -> tuple[list[_Entry], bool]:
        """The next batch: the oldest sentence plus those of its key nearest in length; and if it is full."""
        oldest = self.waiting[0]
        same_key = sorted(
            (e for e in self.waiting if e.request.key == oldest.request.key),
            key=lambda e: (e.item.tokens, e.seq),
        )
        lo = hi = same_key.index(oldest)  # the batch is same_key[lo : hi + 1]; its longest is same_key[hi]
        while hi - lo + 1 < self.limits.max_batch_size:
            grown = []  # (distance in tokens of the added sentence from the oldest, new lo, new hi)
            if lo > 0:
                grown.append((oldest.item.tokens - same_key[lo - 1].item.tokens, lo - 1, hi))
            if hi + 1 < len(same_key):
                grown.append((same_key[hi + 1].item.tokens - oldest.item.tokens, lo, hi + 1))
            fitting = [
                g for g in grown if (g[2] - g[1] + 1) * same_key[g[2]].item.tokens <= self.limits.max_batch_tokens
            ]
            if not fitting:
                break
            _, lo, hi = min(fitting)
        batch = same_key[lo : hi + 1]
        return batch, len(batch) == self.limits.max_batch_size or len(batch) < len(same_key)

    def _drop_expired(self) -> None:
        now = time.monotonic()
        expired = {e.request for e in self.waiting if e.request.deadline is not None and e.request.deadline <= now}
        for request in expired:
            request.fail(DeadlineExceeded("the deadline passed while the request waited in the queue"))
            self.withdraw(request)

    async def _execute(self, batch: list[_Entry]) -> None:
        """Runs one batch on the worker thread and hands each sentence's result to its request."""
        now = time.monotonic()
        for entry in batch:
            self.metrics.queue_wait.labels(self.name).observe(now - entry.enqueued)
        options = batch[0].request.key.options
        tokens = [e.item.tokens for e in batch]
        self.metrics.batch_sentences.labels(self.name).observe(len(batch))
        self.metrics.batch_tokens.labels(self.name).observe(len(batch) * max(tokens))
        loop = asyncio.get_running_loop()
        self.busy = True
        start = time.perf_counter()
        try:
            results = await loop.run_in_executor(
                self.executor, self.backend.translate, [e.item.text for e in batch], options
            )
            if len(results) != len(batch):
                raise RuntimeError(f"model {self.name} returned {len(results)} results for {len(batch)} sentences")
        except asyncio.CancelledError:
            self._fail(batch, Draining("the server stopped before this request was translated"))
            raise
        except Exception as exc:
            log.warning("batch of %d sentences failed on model %s: %r", len(batch), self.name, exc)
            self._fail(batch, exc)
            return
        finally:
            self.busy = False
            elapsed = time.perf_counter() - start
            self.metrics.batch_inference.labels(self.name).observe(elapsed)
        self.metrics.sentences.labels(self.name).inc(len(batch))
        self.metrics.input_tokens.labels(self.name).inc(sum(tokens))
        self.metrics.record_outputs(self.name, results, elapsed)
        for entry, result in zip(batch, results, strict=True):
            entry.request.deliver(entry.index, result)

    def _fail(self, batch: list[_Entry], exc: BaseException) -> None:
        for request in {e.request for e in batch}:
            request.fail(exc)
            self.withdraw(request)


class Batcher:
    """Queues sentences of concurrent requests per model and translates them in dynamic batches.

    `last_active` is the time.monotonic() instant a request last came in or ended.
    """

    def __init__(self, backends: Mapping[str, TranslationBackend], limits: BatchLimits, metrics: Metrics) -> None:
        self._backends = backends
        self._limits = limits
        self._metrics = metrics
        self._lanes: dict[str, _Lane] = {}
        self._seq = itertools.count()
        self._closed = False
        self.last_active = -math.inf

    def depth(self, model: str) -> int:
        """Sentences of `model` waiting for a batch."""
        lane = self._lanes.get(model)
        return len(lane.waiting) if lane else 0

    async def submit(self, items: Sequence[Item], key: BatchKey, deadline: float | None = None) -> list[Translation]:
        """Translates `items` (in order) in batches shared with other requests of the same key.

        `deadline` is a time.monotonic() instant. Raises QueueFull, DeadlineExceeded, Draining,
        ModelNotFound, or the backend's exception.
        """
        self.last_active = time.monotonic()
        if self._closed:
            raise Draining("the server is shutting down; retry on another replica")
        lane = self._lane(key.model)
        if not items:
            return []
        timeout = None if deadline is None else deadline - time.monotonic()
        if timeout is not None and timeout <= 0:
            raise DeadlineExceeded("the deadline passed before the request was queued")
        waiting = len(lane.waiting)
        if waiting + len(items) > self._limits.max_queue_size:
            raise QueueFull(
                f"model {key.model} has {waiting} sentences waiting; {len(items)} more would exceed its"
                f" queue of {self._limits.max_queue_size}; retry later"
            )
        request = _Request(key, len(items), deadline, under_load=lane.busy or bool(lane.waiting))
        lane.enqueue(request, items, self._seq)
        try:
            return await asyncio.wait_for(request.future, timeout)
        except TimeoutError:
            raise DeadlineExceeded("the deadline passed before the translation was ready") from None
        finally:
            self.last_active = time.monotonic()
            if request.future.cancelled():  # timed out or the caller was cancelled: free its queue slots
                lane.withdraw(request)

    async def close(self, timeout: float | None = None) -> None:
        """Stops taking requests and completes the accepted ones; after `timeout` s, fails what is left."""
        self._closed = True
        lanes = list(self._lanes.values())
        try:
            await asyncio.wait_for(asyncio.gather(*(lane.drain() for lane in lanes)), timeout)
        except TimeoutError:
            log.warning("requests still queued after %.1f s of draining are abandoned", timeout)
        finally:
            for lane in lanes:
                lane.abort(Draining("the server stopped before this request was translated"))

    def _lane(self, model: str) -> _Lane:
        lane = self._lanes.get(model)
        if lane is None:
            if model not in self._backends:
                raise ModelNotFound(model, self._backends)
            lane = self._lanes[model] = _Lane(model, self._backends[model], self._limits, self._metrics)
        return lane
