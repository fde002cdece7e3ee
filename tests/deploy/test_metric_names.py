"""Every metric the dashboard and the alerts query is one the service exports."""

from __future__ import annotations

import pytest

from tests.deploy.paths import DASHBOARDS
from tests.deploy.promql import (
    PromQLExpr,
    extract_promql,
    label_values_metrics,
    metric_names,
    substitute_variables,
)
from tests.deploy.service_metrics import SERVICE_METRICS, is_known_series

EXPRESSIONS = extract_promql()


def test_both_sources_are_extracted() -> None:
    sources = {e.source.split(":")[0] for e in EXPRESSIONS}
    assert sources == {path.name for path in DASHBOARDS} | {"alerts.yml"}


def test_no_grafana_variable_left() -> None:
    for e in EXPRESSIONS:
        assert "$" not in e.expr and "[[" not in e.expr, e


@pytest.mark.parametrize("expression", EXPRESSIONS, ids=lambda e: e.source)
def test_metric_is_exported(expression: PromQLExpr) -> None:
    names = metric_names(expression.expr)
    assert names, f"no metric found in {expression.expr}"
    unknown = sorted(name for name in names if not is_known_series(name))
    assert not unknown, f"{expression.source} uses {unknown}, which the service does not export"


def test_dashboard_variables_use_exported_metrics() -> None:
    for path in DASHBOARDS:
        assert all(is_known_series(name) for name in label_values_metrics(path))


def test_histograms_are_queried_through_buckets() -> None:
    histograms = {name for name, metric in SERVICE_METRICS.items() if metric.type == "histogram"}
    for e in EXPRESSIONS:
        assert not metric_names(e.expr) & histograms, f"{e.source}: query {histograms} via _bucket/_sum/_count"


def test_metric_names_helper() -> None:
    expr = (
        'sum by (le) (rate(a_bucket{code!~"OK|x"}[5m] offset 1h)) / on (x) group_left b'
        ' > bool 1e-3 or {__name__="c"} unless histogram_quantile(0.9, d:e)'
    )
    assert metric_names(expr) == {"a_bucket", "b", "c", "d:e"}
    assert not is_known_series("mt_requests")
    assert is_known_series("mt_queue_wait_seconds_count") and not is_known_series("mt_queue_depth_count")


def test_substitute_variables() -> None:
    got = substitute_variables(
        'rate(x{m=~"${model:regex}"}[$__rate_interval]) [[model]]', {"model": ".*", "__rate_interval": "1m"}
    )
    assert got == 'rate(x{m=~".*"}[1m]) .*'
    with pytest.raises(KeyError):
        substitute_variables("$unknown", {})
