"""Grafana: the provisioned datasource and the dashboard that uses it."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.paths import DASHBOARDS, GRAFANA_DASHBOARD_PROVIDER, GRAFANA_DATASOURCE
from tests.deploy.promql import dashboard_promql, iter_panels, metric_names

# Metrics the dashboard must show: traffic, latency, queue, batching, tokens, load, models.
SHOWN_METRICS = {
    "mt_requests_total",
    "mt_request_duration_seconds_bucket",
    "mt_queue_wait_seconds_bucket",
    "mt_batch_size_sentences_bucket",
    "mt_input_tokens_total",
    "mt_output_tokens_total",
    "mt_inflight_requests",
    "mt_queue_depth",
    "mt_model_info",
    "mt_batch_size_tokens_bucket",
    "mt_time_per_output_token_seconds_bucket",
    "mt_truncated_outputs_total",
    "process_resident_memory_bytes",
    "process_cpu_seconds_total",
}
DATASOURCE = "${datasource}"  # the dashboard's datasource variable


def datasource() -> dict[str, Any]:
    [source] = yaml.safe_load(GRAFANA_DATASOURCE.read_text())["datasources"]
    return source


def load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def test_datasource_is_provisioned_with_fixed_uid() -> None:
    source = datasource()
    assert source["type"] == "prometheus"
    assert source["uid"]
    assert source["url"] == "http://prometheus:9090"


def test_dashboard_provider() -> None:
    [provider] = yaml.safe_load(GRAFANA_DASHBOARD_PROVIDER.read_text())["providers"]
    assert provider["type"] == "file" and provider["options"]["path"]


def test_there_is_a_dashboard() -> None:
    assert DASHBOARDS


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_panels_have_title_unit_and_datasource(path: Path) -> None:
    uid = DATASOURCE
    dashboard = load(path)
    panels = [p for p in iter_panels(dashboard) if p.get("type") != "row"]
    assert panels
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in panels:
        title = panel.get("title", "")
        assert title.strip(), f"panel {panel.get('id')} has no title"
        assert panel.get("fieldConfig", {}).get("defaults", {}).get("unit"), f"{title!r} has no unit"
        assert panel.get("datasource", {}).get("uid") == uid, f"{title!r}: datasource uid is not {uid!r}"
        assert panel.get("targets"), f"{title!r} has no query"
        for target in panel["targets"]:
            assert target.get("datasource", {}).get("uid") == uid, f"{title!r} {target.get('refId')}"
            assert target.get("expr"), f"{title!r} {target.get('refId')} has no expression"
        assert {"x", "y", "w", "h"} <= set(panel.get("gridPos", {})), f"{title!r} has no position"
    for variable in dashboard.get("templating", {}).get("list", []):
        if variable.get("type") == "query":
            assert variable["datasource"]["uid"] == uid, variable["name"]


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboard_identity(path: Path) -> None:
    dashboard = load(path)
    assert dashboard.get("uid") and dashboard.get("title")
    assert "id" not in dashboard or dashboard["id"] is None, "provisioned dashboards must not carry a database id"


def test_dashboard_covers_the_service() -> None:
    shown = {name for path in DASHBOARDS for e in dashboard_promql(path) for name in metric_names(e.expr)}
    missing = SHOWN_METRICS - shown
    assert not missing, f"no panel shows {sorted(missing)}"


def test_latency_quantiles_are_per_model() -> None:
    exprs = [e.expr for path in DASHBOARDS for e in dashboard_promql(path)]
    for phi in ("0.5", "0.95", "0.99"):
        assert any(
            f"histogram_quantile({phi}, sum by (le, model) (rate(mt_request_duration_seconds_bucket" in expr
            for expr in exprs
        ), f"no p{phi} latency by model"


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_datasource_and_instance_are_variables(path: Path) -> None:
    """A datasource variable of type prometheus, defaulting to the provisioned one, and an instance variable that
    every query of the service's series filters on."""
    variables = {v["name"]: v for v in load(path)["templating"]["list"]}
    source = variables["datasource"]
    assert source["type"] == "datasource" and source["query"] == "prometheus"
    assert source["current"]["value"] == datasource()["uid"]
    assert "label_values(mt_build_info, instance)" in variables["instance"]["definition"]
    assert 'instance=~"$instance"' in variables["model"]["definition"]
    for e in dashboard_promql(path, variables=None):
        selected = re.findall(r"\b((?:mt|process)_[a-z_]+)(\{[^}]*\})?", e.expr)
        for name, labels in selected:
            if name != "mt_build_info":  # joined on (job, instance) only
                assert 'instance=~"$instance"' in labels, f"{e.source}: {name} is not filtered by instance"


def test_quantiles_have_no_nan_series() -> None:
    """Requests with no model (unknown model, refused calls) and windows without traffic make no NaN lines."""
    for path in DASHBOARDS:
        for e in dashboard_promql(path):
            if "histogram_quantile" in e.expr:
                assert 'model!=""' in e.expr and e.expr.endswith(">= 0"), e.source


def test_batch_sizes_stream_latency_memory_and_cpu_have_their_panels() -> None:
    panels = [p for path in DASHBOARDS for p in iter_panels(load(path))]

    def shown_in(name: str) -> list[dict[str, Any]]:
        return [p for p in panels if any(name in t["expr"] for t in p.get("targets", []))]

    [sentences] = [p for p in shown_in("mt_batch_size_sentences_bucket") if p["type"] == "timeseries"]
    [tokens] = shown_in("mt_batch_size_tokens_bucket")
    assert sentences is not tokens
    assert shown_in('method="TranslateStream"')
    [memory] = shown_in("process_resident_memory_bytes")
    assert memory["fieldConfig"]["defaults"]["unit"] == "bytes"
    assert shown_in("rate(process_cpu_seconds_total")
