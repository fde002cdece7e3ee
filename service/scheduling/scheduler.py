"""Iteration-level (continuous) batching: a decode scheduler per model that owns the step loop.

Each model has a queue of waiting sentences, its cohorts (sentences decoding together, see cohort.py) and
`workers` threads sharing the model's onnxruntime sessions (onnxruntime releases the GIL while it runs).
A worker repeatedly takes one task under the model's lock and runs it outside the lock:

* **Join**: waiting sentences of one beam size form a new cohort (encoded, their cache rows created). A
  cohort is bounded by `max_batch_size` sentences and `max_batch_tokens` padded source tokens, and the
  model by `max_rows` rows in flight (sentences x beams) and by one cohort per worker plus one (more,
  smaller cohorts would cost more decoder calls for the same rows); a cohort down to less than half of its
  rows no longer counts, and a cohort that will merge into one of its beam size (cohort.py) needs no
  slot. Sentences join oldest first; one whose request already holds `max_request_share` of the rows
  waits, so no request holds more than that share, and the last cohort slot is kept for requests that
  hold no rows yet (a lone sentence never waits for a heavy request's cohorts to end). A join happens at
  once on an idle model, and under load once the joining sentences fill a cohort or the oldest has waited
  `max_queue_delay`; while all cohort slots are taken, waiting sentences gather and join together.
* **Step**: one decoder call of the cohort whose sentences have had the fewest decoder rows so far (each
  step gives each of its sentences as many rows as its beams: a greedy cohort steps four times as often as
  a beam-4 one, and a new cohort steps first). Rows, not seconds: a step of one row costs more seconds per
  sentence than a step of many, so counted in seconds the last long sentence of a cohort fell behind every
  fuller cohort (single sentences' p99 under mixed load twice what it is counted in rows, at the same
  throughput; README, scheduling). Before the call, cohorts of its beam size that joined and have not
  stepped yet merge into it where the caches allow (cohort.py): a fresh cohort whose turn comes first joins
  a running one, and one whose running cohorts are all being stepped waits for one rather than stepping by
  itself, once there is one running cohort of its beam size per worker (one buffer for each worker to
  step). The rows of cancelled and expired requests leave before the call; after it, finished sentences
  leave and their results go to their requests at once. Each join (encoder call) and step counts as one
  model call in mt_batch_inference_seconds, so its rate of sums stays the model's busy time.

So a new sentence waits for the steps in flight, never for a whole batch, and a cancelled request's rows
leave at its cohort's next step. Work is refused before it starts when it exceeds the
per-request budget (budget.py) or the queue (`max_queue_size`). `close` drains within a timeout, then
fails what is left with Draining; the workers stop after their current step.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from service.config import Settings
from service.errors import DeadlineExceeded, Draining, ModelNotFound, QueueFull
from service.scheduling.batcher import BatchKey, Item
from service.scheduling.budget import RESPONSE_LIMIT, WORK_LIMIT, BudgetExceeded, check_budget
from service.scheduling.cohort import Cohort, Sentence, StepBackend
from service.telemetry.metrics import Metrics
from service.types import Translation

log = logging.getLogger(__name__)

STOPPED = "the server stopped before this request was translated"


@dataclass(frozen=True)
class SchedulerLimits:
    """Bounds of cohorts, rows, queues and requests; see the module docstring."""

    max_batch_size: int = 32
    max_batch_tokens: int = 4096
    max_rows: int = 256
    max_request_share: float = 0.5
    max_queue_delay_s: float = 0.005
    max_queue_size: int = 1024
    max_request_work: int = 16_000_000
    max_response_bytes: int = 4 * 1024 * 1024
    workers: int = 1

    @classmethod
    def from_settings(cls, settings: Settings) -> SchedulerLimits:
        return cls(
            max_batch_size=settings.max_batch_size,
            max_batch_tokens=settings.max_batch_tokens,
            max_rows=settings.max_rows,
            max_request_share=settings.max_request_share,
            max_queue_delay_s=settings.max_queue_delay_ms / 1000,
            max_queue_size=settings.max_queue_size,
            max_request_work=settings.max_request_work,
            max_response_bytes=settings.max_message_bytes,
            workers=settings.worker_threads,
        )

    @property
    def max_cohorts(self) -> int:
        """Cohorts decoding at a time: one per worker, and one for requests not decoding yet."""
        return self.workers + 1

    @property
    def request_rows(self) -> int:
        """Rows one request may hold at a time."""
        return max(1, int(self.max_rows * self.max_request_share))


class Ticket:
    """One submit call: its results, filled from worker threads through the event loop."""

    def __init__(self, size: int, deadline: float | None) -> None:
        self.deadline = deadline
        self.rows = 0  # rows it holds in cohorts; changed under its model's lock
        self.results: list[Translation | None] = [None] * size
        self.missing = size
        self._cancelled = False
        self._loop = asyncio.get_running_loop()
        self.future: asyncio.Future[list[Translation]] = self._loop.create_future()

    @property
    def expired(self) -> bool:
        return self.deadline is not None and time.monotonic() >= self.deadline

    @property
    def gone(self) -> bool:
        return self._cancelled or self.expired

    def cancel(self) -> None:
        """Its results are no longer wanted (the caller went away, or it failed)."""
        self._cancelled = True

    def deliver(self, index: int, result: Translation) -> None:
        """Hands one sentence's result over (from any thread)."""
        self._call(self._deliver, index, result)

    def fail(self, exc: BaseException) -> None:
        """Ends the request with `exc` (from any thread)."""
        self._cancelled = True
        self._call(self._fail, exc)

    def _call(self, function: Callable[..., None], *args: object) -> None:
        with contextlib.suppress(RuntimeError):  # a closed event loop: nobody waits for the result any more
            self._loop.call_soon_threadsafe(function, *args)

    def _deliver(self, index: int, result: Translation) -> None:
        if self.future.done():
            return
        self.results[index] = result
        self.missing -= 1
        if self.missing == 0:
            self.future.set_result([r for r in self.results if r is not None])

    def _fail(self, exc: BaseException) -> None:
        if not self.future.done():
            self.future.set_exception(exc)


class ModelScheduler:
    """The queue, cohorts and worker threads of one model."""

    def __init__(self, name: str, backend: StepBackend, limits: SchedulerLimits, metrics: Metrics) -> None:
        self.name = name
        self.backend = backend
        self.limits = limits
        self.metrics = metrics
        self.series = metrics.scheduler_series(name)
        self.waiting: deque[Sentence] = deque()  # oldest first
        self.rows = 0  # rows of all cohorts, stepping or not
        self._encoding = 0  # cohorts being formed
        self._ready: deque[Cohort] = deque()  # cohorts waiting for their next step
        self._stepping: dict[Cohort, list[Sentence]] = {}  # cohorts in a step, and their sentences before it
        self._busy = 0  # tasks being run by workers
        self._stopped = False
        self._lock = threading.Condition()
        metrics.queue_capacity.labels(name).set(limits.max_queue_size)
        for limit in (WORK_LIMIT, RESPONSE_LIMIT):  # exported from the start, at 0
            metrics.budget_refusals.labels(name, limit)
        self._threads = [
            threading.Thread(target=self._work, name=f"mt-{name}-{i}", daemon=True) for i in range(limits.workers)
        ]
        for thread in self._threads:
            thread.start()

    def enqueue(self, sentences: Sequence[Sentence]) -> None:
        if not sentences:
            return
        with self._lock:
            if self._stopped:
                raise Draining("the server is shutting down; retry on another replica")
            self.waiting.extend(sentences)
            self._lock.notify()
        self.series.queue_depth.set(len(self.waiting))

    def wake(self) -> None:
        """Lets an idle worker see a change (a request gone)."""
        with self._lock:
            self._lock.notify()

    @property
    def idle(self) -> bool:
        return not self.waiting and not self._ready and self._busy == 0

    def stop(self, exc: BaseException) -> None:
        """Fails all work with `exc` at once; the workers end after their current step."""
        with self._lock:
            self._stopped = True
            self._fail_queued(exc)
            for sentences in self._stepping.values():  # their rows are freed when the step returns
                for sentence in sentences:
                    _ticket(sentence).fail(exc)
            self._lock.notify_all()

    def join(self, timeout: float) -> None:
        for thread in self._threads:
            thread.join(timeout)

    def _work(self) -> None:
        """Run tasks until stopped. A worker that ends a task takes the next one itself, under the same lock, and
        wakes another worker only when work is left for it: a lone cohort's steps stay on one thread, with no
        futile wake-up of the others at every step."""
        ran = False
        while True:
            with self._lock:
                if ran:
                    self._busy -= 1
                task = self._take()
                while task is None and not self._stopped:
                    self._lock.wait(self._hold_s())
                    task = self._take()
                if task is None:
                    return
                self._busy += 1
                if self.waiting or self._ready:
                    self._lock.notify()
            try:
                task()
            except Exception:  # a bug here must not stop the worker
                log.exception("scheduler of model %s failed", self.name)
            ran = True

    def _take(self) -> Callable[[], None] | None:
        """The next task (join, else step), or None; under the lock."""
        if self._stopped:
            return None
        self._drop_gone_waiting()
        sentences = self._joining()
        if sentences:
            return lambda: self._join(sentences)
        plan = self._next_step() if self._ready else None
        if plan is None:
            return None
        cohort, merging = plan
        self._stepping[cohort] = [s for c in (cohort, *merging) for s in c.sentences()]
        return lambda: self._step(cohort, merging)

    def _next_step(self) -> tuple[Cohort, list[Cohort]] | None:
        """The cohort to step (see the module docstring) and the fresh cohorts of its beam size that merge into
        it before its step, taken out of the ready ones; None while the ready ones all wait to merge into a
        cohort being stepped. Under the lock."""
        steppable = [c for c in self._ready if not (self._mergeable(c) and self._hosts_busy(c.beam_size))]
        if not steppable:
            return None
        cohort = min(steppable, key=lambda c: (c.served, not c.fresh))
        merging: list[Cohort] = []
        if self._merges_now(cohort.beam_size):
            if self._mergeable(cohort):  # it joins the running cohort of its beam size with the fewest rows
                hosts = (c for c in self._ready if not c.fresh and c.beam_size == cohort.beam_size)
                cohort = min(hosts, key=lambda c: c.rows, default=cohort)
            merging = [c for c in self._ready if self._mergeable(c) and c.beam_size == cohort.beam_size]
            merging = [c for c in merging if c is not cohort]
        self._ready = deque(c for c in self._ready if c is not cohort and c not in merging)
        return cohort, merging

    def _merges_now(self, beam_size: int) -> bool:
        """Whether fresh cohorts of this beam size merge: their caches can, and there is a running cohort of
        that beam size for every worker (with fewer, a fresh cohort runs by itself, so that every worker has
        a buffer to step). Under the lock."""
        if not self.backend.merges(beam_size):
            return False
        running = [c for c in [*self._ready, *self._stepping] if c.beam_size == beam_size and not c.fresh]
        return len([c for c in running if not c.alone]) >= self.limits.workers

    def _hosts_busy(self, beam_size: int) -> bool:
        """Whether fresh cohorts of this beam size wait to merge: they merge, and every running cohort of that
        beam size is being stepped. Under the lock."""
        stepping = any(c.beam_size == beam_size and not c.alone for c in self._stepping)
        ready = any(c.beam_size == beam_size and not c.fresh for c in self._ready)
        return stepping and not ready and self._merges_now(beam_size)

    def _mergeable(self, cohort: Cohort) -> bool:
        """A fresh cohort that may merge into another."""
        return cohort.fresh and not cohort.alone and self.backend.merges(cohort.beam_size)

    def _hold_s(self) -> float | None:
        """How long an idle worker may sleep: until the oldest waiting sentence is due to join, else until
        notified (a request came, went, or rows left)."""
        if not self.waiting:
            return None
        due = self.waiting[0].enqueued + self.limits.max_queue_delay_s - time.monotonic()
        return due if due > 0 else None

    def _full_cohorts(self) -> int:
        """Cohorts that count against `max_cohorts`: those forming, and those still holding at least half of
        the rows they started with (a cohort's last long sentences do not keep others from joining)."""
        decoding = [*self._ready, *self._stepping]
        return self._encoding + sum(2 * c.rows >= c.start_rows for c in decoding)

    def _joining(self) -> list[Sentence]:
        """The sentences that join now (see the module docstring), taken off the queue; under the lock."""
        if not self.waiting:
            return []
        limits, cohorts = self.limits, self._full_cohorts()
        chosen: list[Sentence] = []
        for beam_size in dict.fromkeys(s.rows for s in self.waiting):  # oldest first
            merges = self._merges_now(beam_size)
            if not merges and cohorts >= limits.max_cohorts:
                continue
            newcomers_only = not merges and cohorts == limits.max_cohorts - 1
            chosen, full = self._choose(beam_size, newcomers_only)
            if chosen:
                break
        if not chosen:
            return []
        due = chosen[0].enqueued + limits.max_queue_delay_s <= time.monotonic()
        if not (full or due or self.rows == 0):
            return []
        taken = set(map(id, chosen))
        self.waiting = deque(s for s in self.waiting if id(s) not in taken)
        for sentence in chosen:
            _ticket(sentence).rows += sentence.rows
            self.rows += sentence.rows
        self._encoding += 1
        self._observe()
        return chosen

    def _choose(self, beam_size: int, newcomers_only: bool) -> tuple[list[Sentence], bool]:
        """Waiting sentences of one beam size that may join together, oldest first (a cohort of one beam width
        reorders its beams by index and merges with others of that width), and whether a limit stopped the
        choice; `newcomers_only`: only sentences of requests that hold no rows yet."""
        limits, room = self.limits, self.limits.max_rows - self.rows
        chosen: list[Sentence] = []
        longest = 0
        held: dict[object, int] = {}  # rows each request would hold
        for sentence in self.waiting:
            owner = _ticket(sentence)
            rows = held.get(owner, owner.rows)
            if sentence.rows != beam_size:
                continue
            if (rows and rows + sentence.rows > limits.request_rows) or (newcomers_only and owner.rows):
                continue  # its request holds its share: the sentence waits for the request's rows to leave
            tokens = max(longest, len(sentence.source)) * (len(chosen) + 1)
            if sentence.rows > room or len(chosen) == limits.max_batch_size or tokens > limits.max_batch_tokens:
                return chosen, True
            chosen.append(sentence)
            held[owner] = rows + sentence.rows
            room -= sentence.rows
            longest = max(longest, len(sentence.source))
        return chosen, False

    def _join(self, sentences: list[Sentence]) -> None:
        """Encodes the joining sentences into a new cohort, whose first step comes next."""
        now = time.monotonic()
        for sentence in sentences:
            self.metrics.queue_wait.labels(self.name).observe(now - sentence.enqueued)
        self.metrics.sentence_joins.labels(self.name).inc(len(sentences))
        self.metrics.batch_sentences.labels(self.name).observe(len(sentences))
        self.metrics.batch_tokens.labels(self.name).observe(len(sentences) * max(len(s.source) for s in sentences))
        try:
            with self.metrics.batch_inference.labels(self.name).time():
                cohort = Cohort(self.backend, sentences)
        except Exception as exc:
            log.warning("%d sentences of model %s failed to join: %r", len(sentences), self.name, exc)
            with self._lock:
                self._encoding -= 1
                self._leave(sentences, "failed", exc)
            return
        with self._lock:
            self._encoding -= 1
            if self._stopped:
                self._leave(sentences, "stopped", Draining(STOPPED))
            else:
                cohort.served = min((c.served for c in [*self._ready, *self._stepping]), default=0.0)
                self._ready.appendleft(cohort)

    def _step(self, cohort: Cohort, merging: list[Cohort]) -> None:
        """One step of `cohort`: fresh cohorts merge into it, gone rows leave, one decoder call, finished
        sentences leave with results."""
        members, refused = self._stepping[cohort], []
        try:
            started = time.perf_counter()
            refused = [c for c in merging if not cohort.absorb(c)]  # these step by themselves, next
            for alone in refused:
                alone.alone = True
            dropped = cohort.drop_gone()
            finished = cohort.step() if cohort.rows else []
            seconds = time.perf_counter() - started
        except Exception as exc:
            log.warning("a decoder step of model %s failed: %r", self.name, exc)
            with self._lock:
                del self._stepping[cohort]
                self._leave(members, "failed", exc)
            return
        cohort.served += cohort.beam_size  # the rows each of its sentences had in this step
        if len(merging) > len(refused):
            self.metrics.cohort_merges.labels(self.name).inc(len(merging) - len(refused))
        self.series.decoder_steps.inc()
        self.series.batch_inference.observe(seconds)
        self.series.time_per_output_token.observe(seconds)  # a step gives each row one token
        for sentence, translation in finished:
            _ticket(sentence).deliver(sentence.index, translation)
        self._count_output(finished)
        with self._lock:
            del self._stepping[cohort]
            for sentence in dropped:
                expired = _ticket(sentence).expired
                error = DeadlineExceeded("the deadline passed while the request was translated") if expired else None
                self._leave([sentence], "expired" if expired else "cancelled", error)
            self._leave([s for s, _ in finished], "finished", None)
            if self._stopped:
                self._leave([s for c in (cohort, *refused) for s in c.sentences()], "stopped", Draining(STOPPED))
                return
            if cohort.rows:
                self._ready.append(cohort)
            self._ready.extendleft(refused)

    def _leave(self, sentences: Sequence[Sentence], reason: str, error: BaseException | None) -> None:
        """Sentences leave their cohort (their rows are free); `error` fails their requests; under the lock."""
        if not sentences:
            return
        for sentence in sentences:
            ticket = _ticket(sentence)
            ticket.rows -= sentence.rows
            self.rows -= sentence.rows
            if error is not None:
                ticket.fail(error)
        self.metrics.sentence_leaves.labels(self.name, reason).inc(len(sentences))
        self._observe()

    def _drop_gone_waiting(self) -> None:
        """Waiting sentences of cancelled or expired requests leave the queue; under the lock."""
        if not any(s.owner.gone for s in self.waiting):
            return
        for sentence in self.waiting:
            ticket = _ticket(sentence)
            if ticket.expired:
                ticket.fail(DeadlineExceeded("the deadline passed while the request waited in the queue"))
        self.waiting = deque(s for s in self.waiting if not s.owner.gone)
        self._observe()

    def _fail_queued(self, error: BaseException) -> None:
        """Fails the waiting sentences and the cohorts no worker is stepping; under the lock."""
        for sentence in self.waiting:
            _ticket(sentence).fail(error)
        self.waiting.clear()
        while self._ready:
            self._leave(self._ready.popleft().sentences(), "stopped", error)
        self._observe()

    def _count_output(self, finished: list[tuple[Sentence, Translation]]) -> None:
        if not finished:
            return
        self.metrics.sentences.labels(self.name).inc(len(finished))
        self.metrics.input_tokens.labels(self.name).inc(sum(len(s.source) for s, _ in finished))
        self.metrics.count_outputs(self.name, [t for _, t in finished])

    def _observe(self) -> None:
        self.series.rows_in_flight.set(self.rows)
        self.series.queue_depth.set(len(self.waiting))


def _ticket(sentence: Sentence) -> Ticket:
    owner = sentence.owner
    assert isinstance(owner, Ticket)
    return owner


class Scheduler:
    """Decodes the sentences of concurrent requests step by step, per model; the interface of
    service.scheduling.batcher.Batcher (`submit`, `close`, `depth`, `last_active`).

    `last_active` is the time.monotonic() instant a request last came in or ended.
    """

    def __init__(self, backends: Mapping[str, StepBackend], limits: SchedulerLimits, metrics: Metrics) -> None:
        self._backends = backends
        self._limits = limits
        self._metrics = metrics
        self._models: dict[str, ModelScheduler] = {}
        self._closed = False
        self.last_active = -math.inf

    def depth(self, model: str) -> int:
        """Sentences of `model` waiting to join."""
        scheduler = self._models.get(model)
        return len(scheduler.waiting) if scheduler else 0

    async def submit(self, items: Sequence[Item], key: BatchKey, deadline: float | None = None) -> list[Translation]:
        """Translates `items` (in order), decoding them beside other requests' sentences.

        `deadline` is a time.monotonic() instant. Raises QueueFull, BudgetExceeded, DeadlineExceeded,
        Draining, ModelNotFound, or the model's exception.
        """
        self.last_active = time.monotonic()
        if self._closed:
            raise Draining("the server is shutting down; retry on another replica")
        model = self._model(key.model)
        if not items:
            return []
        timeout = None if deadline is None else deadline - time.monotonic()
        if timeout is not None and timeout <= 0:
            raise DeadlineExceeded("the deadline passed before the request was queued")
        self._check_budget(model, items, key)
        waiting = len(model.waiting)
        if waiting + len(items) > self._limits.max_queue_size:
            raise QueueFull(
                f"model {key.model} has {waiting} sentences waiting; {len(items)} more would exceed its"
                f" queue of {self._limits.max_queue_size}; retry later"
            )
        ticket = Ticket(len(items), deadline)
        sentences = self._sentences(model.backend, ticket, items, key)
        for empty in (s for s in sentences if not s.source):  # no tokens: nothing to decode
            ticket.deliver(empty.index, model.backend.translation([], [], key.options))
        model.enqueue([s for s in sentences if s.source])
        try:
            return await asyncio.wait_for(ticket.future, timeout)
        except TimeoutError:
            raise DeadlineExceeded("the deadline passed before the translation was ready") from None
        finally:
            self.last_active = time.monotonic()
            if not ticket.future.done() or ticket.future.cancelled():  # its rows leave at the next step
                ticket.cancel()
                model.wake()

    async def close(self, timeout: float | None = None) -> None:
        """Stops taking requests and completes the accepted ones; after `timeout` s, fails what is left."""
        self._closed = True
        models = list(self._models.values())
        end = math.inf if timeout is None else time.monotonic() + timeout
        while not all(m.idle for m in models) and time.monotonic() < end:
            await asyncio.sleep(0.01)
        if not all(m.idle for m in models):
            log.warning("requests still running after %.1f s of draining are abandoned", timeout)
        for model in models:
            model.stop(Draining(STOPPED))
        for model in models:
            await asyncio.to_thread(model.join, 1.0)

    def _check_budget(self, model: ModelScheduler, items: Sequence[Item], key: BatchKey) -> None:
        tokens = [item.tokens for item in items]
        try:
            max_lengths = model.backend.max_lengths(tokens, key.options)
            limits = self._limits
            check_budget(tokens, key.options, max_lengths, limits.max_request_work, limits.max_response_bytes)
        except BudgetExceeded as exc:
            self._metrics.budget_refusals.labels(model.name, exc.limit).inc()
            raise

    @staticmethod
    def _sentences(backend: StepBackend, ticket: Ticket, items: Sequence[Item], key: BatchKey) -> list[Sentence]:
        sentences = []
        for index, item in enumerate(items):
            started = time.perf_counter()
            source = backend.source_ids(item.text)
            sentences.append(Sentence(ticket, index, source, key.options, time.perf_counter() - started))
        return sentences

    def _model(self, name: str) -> ModelScheduler:
        model = self._models.get(name)
        if model is None:
            if name not in self._backends:
                raise ModelNotFound(name, self._backends)
            model = self._models[name] = ModelScheduler(name, self._backends[name], self._limits, self._metrics)
        return model
