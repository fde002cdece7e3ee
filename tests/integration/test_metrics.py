"""The /metrics page of the service exports exactly the metrics the dashboard and the alert rules are checked
against (tests/deploy/service_metrics.py), so neither side can drift from the other."""

from __future__ import annotations

import grpc
from prometheus_client.parser import text_string_to_metric_families

from tests.deploy.service_metrics import METHODS, SERVICE_METRICS, Metric
from tests.integration.calls import mixed_traffic
from tests.support.service_process import ServiceProcess


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
    assert exported_metrics(service.metrics_text()) == SERVICE_METRICS
    samples = service.samples()
    assert {s.labels["method"] for s in samples if "method" in s.labels} == METHODS
    assert {s.labels["code"] for s in samples if "code" in s.labels} <= {code.name for code in grpc.StatusCode}
