"""The metrics the translation service exports: the one list the dashboard, the
alert rules and a live /metrics page are checked against."""

from __future__ import annotations

from typing import NamedTuple


class Metric(NamedTuple):
    type: str  # counter, gauge or histogram
    labels: frozenset[str]


def _m(type_: str, *labels: str) -> Metric:
    return Metric(type_, frozenset(labels))


SERVICE_METRICS: dict[str, Metric] = {
    "mt_request_duration_seconds": _m("histogram", "method", "model", "code", "protocol"),
    "mt_requests_total": _m("counter", "method", "model", "code", "protocol"),
    "mt_queue_wait_seconds": _m("histogram", "model"),
    "mt_batch_inference_seconds": _m("histogram", "model"),
    "mt_batch_size_sentences": _m("histogram", "model"),
    "mt_batch_size_tokens": _m("histogram", "model"),
    "mt_input_tokens_total": _m("counter", "model"),
    "mt_output_tokens_total": _m("counter", "model"),
    "mt_sentences_total": _m("counter", "model"),
    "mt_truncated_outputs_total": _m("counter", "model"),
    "mt_time_per_output_token_seconds": _m("histogram", "model"),
    "mt_inflight_requests": _m("gauge", "method"),
    "mt_queue_depth": _m("gauge", "model"),
    "mt_queue_capacity": _m("gauge", "model"),
    "mt_model_info": _m(
        "gauge", "model", "version", "provider", "requested_provider", "source_language", "target_language"
    ),
    "mt_build_info": _m("gauge", "version", "revision", "onnxruntime", "python"),
    "mt_rows_in_flight": _m("gauge", "model"),
    "mt_decoder_steps_total": _m("counter", "model"),
    "mt_sentence_joins_total": _m("counter", "model"),
    "mt_cohort_merges_total": _m("counter", "model"),
    "mt_sentence_leaves_total": _m("counter", "model", "reason"),
    "mt_budget_refusals_total": _m("counter", "model", "limit"),
    "mt_grpc_calls_started_total": _m("counter"),
}

# Series of prometheus_client's process and platform collectors the dashboard and alerts may use.
RUNTIME_METRICS: dict[str, Metric] = {
    "process_cpu_seconds_total": _m("counter"),
    "process_resident_memory_bytes": _m("gauge"),
    "process_open_fds": _m("gauge"),
    "python_info": _m("gauge", "implementation", "major", "minor", "patchlevel", "version"),
}

# Methods that appear in the "method" label (the gRPC names, over HTTP too).
METHODS = frozenset({"Translate", "TranslateStream", "ListModels"})

# Series Prometheus makes itself, which rules and panels may use too.
PROMETHEUS_METRICS = frozenset({"up"})

_HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


def is_known_series(name: str) -> bool:
    """True for a service metric, a histogram's _bucket/_sum/_count series, or a Prometheus series."""
    if name in SERVICE_METRICS or name in RUNTIME_METRICS or name in PROMETHEUS_METRICS:
        return True
    for suffix in _HISTOGRAM_SUFFIXES:
        base = name.removesuffix(suffix)
        if base != name and SERVICE_METRICS.get(base, _m("")).type == "histogram":
            return True
    return False
