"""The /metrics page of the service exports exactly the metrics the dashboard and the alert rules are checked
against (tests/deploy/service_metrics.py), so neither side can drift from the other."""

from __future__ import annotations

import platform
from pathlib import Path

import grpc
import onnxruntime
from prometheus_client.parser import text_string_to_metric_families

from tests.deploy.service_metrics import METHODS, RUNTIME_METRICS, SERVICE_METRICS, Metric
from tests.integration.calls import FP32_MODEL, MODEL, mixed_traffic
from tests.support.service_process import ServiceProcess, StartService


def exported_metrics(page: str) -> dict[str, Metric]:
    """Each metric of an exposition page by its declared name, with its type and labels (`le` aside)."""
    found = {}
    for family in text_string_to_metric_families(page):
        name = f"{family.name}_total" if family.type == "counter" else family.name
        found[name] = Metric(family.type, frozenset(label for s in family.samples for label in s.labels) - {"le"})
    return found


def test_exported_metrics_are_the_documented_ones(service: ServiceProcess) -> None:
    with service.client() as client:
        mixed_traffic(client)
    exported = exported_metrics(service.metrics_text())
    assert {name: metric for name, metric in exported.items() if name.startswith("mt_")} == SERVICE_METRICS
    samples = service.samples()
    assert {s.labels["method"] for s in samples if "method" in s.labels} == METHODS
    assert {s.labels["code"] for s in samples if "code" in s.labels} <= {code.name for code in grpc.StatusCode}


def test_a_fresh_server_exports_every_series_at_zero(models_root: Path, start_service: StartService) -> None:
    """Before any request: each method x model x code that can occur, each model's series, the process and Python
    collectors, and the build."""
    service = start_service(models_root)
    service.wait_serving()
    page = service.metrics_text()
    exported = exported_metrics(page)
    assert {name for name in exported if name.startswith("mt_")} == set(SERVICE_METRICS)
    for name, metric in RUNTIME_METRICS.items():
        assert exported[name] == metric, name
    samples = service.samples()
    requests = {
        (s.labels["method"], s.labels["model"], s.labels["code"]): s.value
        for s in samples
        if s.name == "mt_requests_total"
    }
    models = {MODEL, FP32_MODEL}
    for method in ("Translate", "TranslateStream"):
        for model in models:
            for code in ("OK", "INVALID_ARGUMENT", "RESOURCE_EXHAUSTED", "DEADLINE_EXCEEDED", "UNAVAILABLE"):
                assert (method, model, code) in requests, (method, model, code)
        for code in ("NOT_FOUND", "UNAUTHENTICATED", "INVALID_ARGUMENT"):
            assert (method, "", code) in requests
    assert ("ListModels", "", "OK") in requests
    assert not any(requests.values())  # the warm-up is not a request
    per_model = {s.labels["model"] for s in samples if s.name == "mt_truncated_outputs_total"}
    assert per_model == models
    waits = [s for s in samples if s.name == "mt_queue_wait_seconds_bucket" and s.labels["model"] == MODEL]
    assert min(float(s.labels["le"]) for s in waits) < 0.001
    [build] = [s for s in samples if s.name == "mt_build_info"]
    assert build.value == 1 and build.labels["python"] == platform.python_version()
    assert build.labels["onnxruntime"] == onnxruntime.__version__ and build.labels["version"] != "unknown"
    [info] = [s for s in samples if s.name == "mt_model_info" and s.labels["model"] == MODEL]
    assert info.labels["requested_provider"] == info.labels["provider"] == "CPUExecutionProvider"


def test_outputs_cut_at_the_maximum_length_are_counted(service: ServiceProcess) -> None:
    before = service.sample_sum("mt_truncated_outputs_total", model=MODEL)
    with service.client() as client:
        client.translate(["big red car", "small dog"], max_length=1)
    assert service.sample_sum("mt_truncated_outputs_total", model=MODEL) - before == 2
    assert service.sample_sum("mt_time_per_output_token_seconds_count", model=MODEL) > 0
