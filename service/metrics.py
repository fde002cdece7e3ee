"""Prometheus metrics of the server, on their own registry and HTTP port.

The names and labels are a contract with the dashboards and alert rules; change them only together.
Label `model` is the served model's name, or "" where a request names no served model or the method
has none; `code` is the gRPC status name (OK, INVALID_ARGUMENT, ...).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from wsgiref.simple_server import WSGIServer

import grpc
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics, start_http_server

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 0.75, 1, 2.5, 5, 10)
SENTENCE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)
TOKEN_BUCKETS = (16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384)


@dataclass
class RequestOutcome:
    """Filled in by the code handling one request; recorded when its `track` block ends."""

    model: str = ""
    code: grpc.StatusCode = grpc.StatusCode.OK


class Metrics:
    """All metrics of one server, registered on `registry`."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.request_duration = Histogram(
            "mt_request_duration_seconds",
            "Time to answer one request",
            ["method", "model", "code"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.requests = Counter("mt_requests_total", "Requests answered", ["method", "model", "code"], registry=r)
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
        self.sentences = Counter("mt_sentences_total", "Sentences translated by the model", ["model"], registry=r)
        self.inflight = Gauge("mt_inflight_requests", "Requests being handled", ["method"], registry=r)
        self.queue_depth = Gauge("mt_queue_depth", "Sentences waiting for a batch", ["model"], registry=r)
        self.queue_capacity = Gauge(
            "mt_queue_capacity", "Sentences that may wait before work is refused", ["model"], registry=r
        )
        self.model_info = Gauge(
            "mt_model_info",
            "Served model (always 1)",
            ["model", "version", "provider", "source_language", "target_language"],
            registry=r,
        )
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

    @contextmanager
    def track(self, method: str, model: str = "") -> Iterator[RequestOutcome]:
        """Counts one request in flight, then records its duration and outcome."""
        outcome = RequestOutcome(model=model)
        inflight = self.inflight.labels(method)
        inflight.inc()
        start = time.perf_counter()
        try:
            yield outcome
        except asyncio.CancelledError:
            outcome.code = grpc.StatusCode.CANCELLED
            raise
        except BaseException:
            if outcome.code == grpc.StatusCode.OK:
                outcome.code = grpc.StatusCode.UNKNOWN
            raise
        finally:
            inflight.dec()
            labels = (method, outcome.model, outcome.code.name)
            self.request_duration.labels(*labels).observe(time.perf_counter() - start)
            self.requests.labels(*labels).inc()


@dataclass
class MetricsHttpServer:
    """The running /metrics endpoint."""

    httpd: WSGIServer
    thread: threading.Thread = field(repr=False)

    @property
    def port(self) -> int:
        port: int = self.httpd.server_address[1]
        return port

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


def start_metrics_server(metrics: Metrics, host: str, port: int) -> MetricsHttpServer:
    """Serves `metrics` over HTTP on host:port (0 picks a free port).

    Without the `*_created` series prometheus_client would add to every counter and histogram: they are not
    part of the metrics contract, and Prometheus would store each as one more series. (A process-wide switch.)
    """
    disable_created_metrics()
    httpd, thread = start_http_server(port, addr=host, registry=metrics.registry)
    return MetricsHttpServer(httpd, thread)
