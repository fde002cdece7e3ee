"""Prometheus metrics of the server, on their own registry (served by service.telemetry.metrics_server).

The names and labels are a contract with the dashboards and alert rules; change them only together.
Label `model` is the served model's name, or "" where a request names no served model or the method
has none; `code` is the gRPC status name (OK, INVALID_ARGUMENT, ...), over HTTP too; `protocol` is the
transport the request came by: "grpc" or "http".
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import grpc
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)

from service.telemetry.grpc_calls import GrpcCallsCollector
from service.types import Translation

LATENCY_BUCKETS = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.075,
    0.1,
    0.15,
    0.25,
    0.5,
    0.75,
    1,
    2.5,
    5,
    10,
)
# A client ends a call at its own deadline, which the server's (counted from the call's arrival) trails by the
# time the call took to arrive, more on a busy server: a cancellation this close to the deadline is taken for it.
DEADLINE_SLACK_S = 0.05
METHODS = ("Translate", "TranslateStream", "ListModels")
MODEL_CODES = (
    "OK",
    "INVALID_ARGUMENT",
    "RESOURCE_EXHAUSTED",
    "DEADLINE_EXCEEDED",
    "CANCELLED",
    "UNAVAILABLE",
    "INTERNAL",
)
UNRESOLVED_CODES = ("INVALID_ARGUMENT", "NOT_FOUND", "UNAUTHENTICATED", "DEADLINE_EXCEEDED")  # before a model is known
LIST_MODELS_CODES = ("OK", "INVALID_ARGUMENT", "UNAUTHENTICATED", "DEADLINE_EXCEEDED", "CANCELLED")
SENTENCE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)
TOKEN_BUCKETS = (16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384)
REQUEST_LABELS = ("method", "model", "code", "protocol")
GRPC, HTTP = "grpc", "http"
LEAVE_REASONS = ("finished", "cancelled", "expired", "failed", "stopped")  # why a sentence left the decode


@dataclass
class RequestOutcome:
    """Filled in by the code handling one request; recorded when its `track` block ends."""

    model: str = ""
    code: grpc.StatusCode = grpc.StatusCode.OK


@dataclass(frozen=True)
class SchedulerSeries:
    """One model's series of Metrics that a decoder step updates (binding a label costs a lookup and a lock)."""

    decoder_steps: Counter
    batch_inference: Histogram
    time_per_output_token: Histogram
    rows_in_flight: Gauge
    queue_depth: Gauge


class Metrics:
    """All metrics of one server, registered on `registry`."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.request_duration = Histogram(
            "mt_request_duration_seconds",
            "Time to answer one request",
            REQUEST_LABELS,
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.requests = Counter("mt_requests_total", "Requests answered", REQUEST_LABELS, registry=r)
        self.queue_wait = Histogram(
            "mt_queue_wait_seconds",
            "Time a sentence waited in the queue before its batch started",
            ["model"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.batch_inference = Histogram(
            "mt_batch_inference_seconds",
            "Time of one model call on a batch",
            ["model"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.batch_sentences = Histogram(
            "mt_batch_size_sentences", "Sentences per batch", ["model"], buckets=SENTENCE_BUCKETS, registry=r
        )
        self.batch_tokens = Histogram(
            "mt_batch_size_tokens",
            "Padded source tokens per batch (sentences x longest)",
            ["model"],
            buckets=TOKEN_BUCKETS,
            registry=r,
        )
        self.input_tokens = Counter(
            "mt_input_tokens_total", "Source tokens of translated sentences", ["model"], registry=r
        )
        self.output_tokens = Counter(
            "mt_output_tokens_total", "Target tokens of returned hypotheses", ["model"], registry=r
        )
        self.truncated_outputs = Counter(
            "mt_truncated_outputs_total",
            "Translations whose best hypothesis was cut at the maximum length (no end of sentence)",
            ["model"],
            registry=r,
        )
        self.time_per_output_token = Histogram(
            "mt_time_per_output_token_seconds",
            "Time of a batch's model call per output token of its longest best hypothesis (one decoding step)",
            ["model"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.sentences = Counter("mt_sentences_total", "Sentences translated by the model", ["model"], registry=r)
        self.inflight = Gauge("mt_inflight_requests", "Requests being handled", ["method"], registry=r)
        self.queue_depth = Gauge("mt_queue_depth", "Sentences waiting for a batch", ["model"], registry=r)
        self.queue_capacity = Gauge(
            "mt_queue_capacity", "Sentences that may wait before work is refused", ["model"], registry=r
        )
        self.model_info = Gauge(
            "mt_model_info",
            "Served model (always 1)",
            ["model", "version", "provider", "requested_provider", "source_language", "target_language"],
            registry=r,
        )
        self.build_info = Gauge(
            "mt_build_info",
            "The running build (always 1)",
            ["version", "revision", "onnxruntime", "python"],
            registry=r,
        )
        for collector in (ProcessCollector, PlatformCollector, GCCollector):
            collector(registry=r)  # process_* and python_* series
        r.register(GrpcCallsCollector())
        self._add_scheduler_metrics(r)

    def _add_scheduler_metrics(self, r: CollectorRegistry) -> None:
        """Metrics of the continuous (step-level) scheduler, service/scheduling. Joins and leaves per step:
        their rates divided by the rate of mt_decoder_steps_total. Queue time before joining:
        mt_queue_wait_seconds."""
        self.rows_in_flight = Gauge(
            "mt_rows_in_flight", "Decoder rows (sentences x beams) being decoded", ["model"], registry=r
        )
        self.decoder_steps = Counter("mt_decoder_steps_total", "Decoder calls of the scheduler", ["model"], registry=r)
        self.sentence_joins = Counter(
            "mt_sentence_joins_total", "Sentences that joined the decode", ["model"], registry=r
        )
        self.cohort_merges = Counter(
            "mt_cohort_merges_total",
            "Cohorts that merged into a decoding one (their rows share its decoder calls from then on)",
            ["model"],
            registry=r,
        )
        self.sentence_leaves = Counter(
            "mt_sentence_leaves_total",
            "Sentences that left the decode, by reason (finished, cancelled, expired, failed, stopped)",
            ["model", "reason"],
            registry=r,
        )
        self.budget_refusals = Counter(
            "mt_budget_refusals_total",
            "Requests refused before any work, by the limit they exceeded",
            ["model", "limit"],
            registry=r,
        )

    def initialize(self, models: Iterable[str]) -> None:
        """Creates every labelled series that can occur, at 0: a fresh server shows zeros, not "no data"."""
        models = list(models)
        for labels in _request_labels(models):
            self.requests.labels(*labels)
            self.request_duration.labels(*labels)
        for method in METHODS:
            self.inflight.labels(method)
        for model in models:
            for per_model in (
                self.queue_wait,
                self.batch_inference,
                self.batch_sentences,
                self.batch_tokens,
                self.input_tokens,
                self.output_tokens,
                self.sentences,
                self.truncated_outputs,
                self.time_per_output_token,
                self.queue_depth,
                self.rows_in_flight,
                self.decoder_steps,
                self.sentence_joins,
                self.cohort_merges,
            ):
                per_model.labels(model)
            for reason in LEAVE_REASONS:
                self.sentence_leaves.labels(model, reason)

    def scheduler_series(self, model: str) -> SchedulerSeries:
        """The series one model's scheduler updates at every step, their label bound once."""
        return SchedulerSeries(
            decoder_steps=self.decoder_steps.labels(model),
            batch_inference=self.batch_inference.labels(model),
            time_per_output_token=self.time_per_output_token.labels(model),
            rows_in_flight=self.rows_in_flight.labels(model),
            queue_depth=self.queue_depth.labels(model),
        )

    def count_outputs(self, model: str, results: Sequence[Translation]) -> None:
        """Counts finished translations' output tokens and those cut at the maximum length."""
        self.output_tokens.labels(model).inc(sum(len(h.tokens) for r in results for h in r.hypotheses))
        self.truncated_outputs.labels(model).inc(sum(r.best.truncated for r in results))

    def record_outputs(self, model: str, results: Sequence[Translation], seconds: float) -> None:
        """Counts a batch's outputs (count_outputs) and its time per decoding step."""
        self.count_outputs(model, results)
        steps = max((len(r.best.tokens) + 1 for r in results), default=0)  # + 1: the end of sentence
        if steps:
            self.time_per_output_token.labels(model).observe(seconds / steps)

    @contextmanager
    def track(
        self, method: str, model: str = "", deadline: float | None = None, protocol: str = GRPC
    ) -> Iterator[RequestOutcome]:
        """Counts one request in flight, then records its duration and outcome.

        A request cancelled at its `deadline` (a time.monotonic() instant: grpc cancels the handler when the
        deadline passes) ends DEADLINE_EXCEEDED, one cancelled before it CANCELLED (the client went away).
        """
        outcome = RequestOutcome(model=model)
        inflight = self.inflight.labels(method)
        inflight.inc()
        start = time.perf_counter()
        try:
            yield outcome
        except asyncio.CancelledError:
            expired = deadline is not None and time.monotonic() >= deadline - DEADLINE_SLACK_S
            outcome.code = grpc.StatusCode.DEADLINE_EXCEEDED if expired else grpc.StatusCode.CANCELLED
            raise
        except BaseException:
            if outcome.code == grpc.StatusCode.OK:
                outcome.code = grpc.StatusCode.UNKNOWN
            raise
        finally:
            inflight.dec()
            labels = (method, outcome.model, outcome.code.name, protocol)
            self.request_duration.labels(*labels).observe(time.perf_counter() - start)
            self.requests.labels(*labels).inc()


def _request_labels(models: Sequence[str]) -> Iterator[tuple[str, str, str, str]]:
    """(method, model, code, protocol) of every request outcome that can occur (no TranslateStream over HTTP)."""
    for method, protocols in (("Translate", (GRPC, HTTP)), ("TranslateStream", (GRPC,))):
        for protocol in protocols:
            for model in models:
                for code in MODEL_CODES:
                    yield method, model, code, protocol
            for code in UNRESOLVED_CODES:
                yield method, "", code, protocol
    for protocol in (GRPC, HTTP):
        for code in LIST_MODELS_CODES:
            yield "ListModels", "", code, protocol
