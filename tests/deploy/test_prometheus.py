"""Prometheus configs and alert rules: promtool where it is installed, structure always."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import yaml

from tests.deploy.paths import (
    ALERT_RULE_TESTS,
    ALERT_RULES,
    DASHBOARDS,
    K8S_DIR,
    PROMETHEUS_CONFIG,
    PROMETHEUS_DIR,
    PROMETHEUS_K8S_CONFIG,
    find_tool,
)
from tests.deploy.promql import dashboard_promql
from tests.deploy.tools import requires

PROMTOOL = find_tool("promtool")
needs_promtool = requires("promtool", hint="run deploy/install-tools.sh (as root, installs Debian's 'prometheus')")
REQUIRED_ALERTS = {
    "TranslatorHighLatencyP99",
    "TranslatorHighErrorRatio",
    "TranslatorQueueNearlyFull",
    "TranslatorInstanceDown",
    "TranslatorAbsent",
    "TranslatorRunsOnCPUInsteadOfCUDA",
}


def promtool(*args: str, cwd: Path = PROMETHEUS_DIR) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL
    return subprocess.run([PROMTOOL, *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def alerts() -> dict[str, dict[str, Any]]:
    groups = yaml.safe_load(ALERT_RULES.read_text())["groups"]
    return {rule["alert"]: rule for group in groups for rule in group["rules"] if "alert" in rule}


@needs_promtool
def test_compose_config_is_valid() -> None:
    result = promtool("check", "config", PROMETHEUS_CONFIG.name)
    assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
def test_kubernetes_config_is_valid(tmp_path: Path) -> None:
    result = promtool("check", "config", PROMETHEUS_K8S_CONFIG.name)
    output = result.stdout + result.stderr
    if "kubernetes_sd_configs not found" in output:
        # Debian's promtool is built without Kubernetes discovery: check the
        # rest of the config (relabelling included) with a static target instead.
        config = yaml.safe_load(PROMETHEUS_K8S_CONFIG.read_text())
        for job in config["scrape_configs"]:
            if job.pop("kubernetes_sd_configs", None) is not None:
                job["static_configs"] = [{"targets": ["localhost:9400"]}]
        (tmp_path / ALERT_RULES.name).write_text(ALERT_RULES.read_text())
        (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
        result = promtool("check", "config", "prometheus.yml", cwd=tmp_path)
        output = result.stdout + result.stderr
    assert result.returncode == 0, output


@needs_promtool
def test_rules_are_valid() -> None:
    result = promtool("check", "rules", ALERT_RULES.name)
    assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
def test_rule_unit_tests_pass() -> None:
    result = promtool("test", "rules", ALERT_RULE_TESTS.name)
    assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
def test_dashboard_queries_parse(tmp_path: Path) -> None:
    # promtool has no "check expression"; as recording rules, it parses them all.
    exprs = [e for path in DASHBOARDS for e in dashboard_promql(path)]
    rules = [{"record": f"dashboard:query_{i}", "expr": e.expr} for i, e in enumerate(exprs)]
    rule_file = tmp_path / "dashboard-queries.yml"
    rule_file.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = promtool("check", "rules", str(rule_file))
    assert result.returncode == 0, result.stdout + result.stderr + "\n".join(map(str, exprs))


def test_configs_load_the_alert_rules() -> None:
    for config_file in (PROMETHEUS_CONFIG, PROMETHEUS_K8S_CONFIG):
        config = yaml.safe_load(config_file.read_text())
        assert config["rule_files"] == [ALERT_RULES.name]


def test_every_alert_is_documented() -> None:
    rules = alerts()
    assert set(rules) >= REQUIRED_ALERTS
    for name, rule in rules.items():
        assert re.fullmatch(r"\d+[smh]", rule.get("for", "")), f"{name}: needs a for: duration"
        assert rule["labels"]["severity"] in {"warning", "critical"}, name
        assert rule["annotations"].get("summary") and rule["annotations"].get("description"), name


def test_alert_expressions() -> None:
    rules = alerts()
    latency = rules["TranslatorHighLatencyP99"]["expr"]
    assert "histogram_quantile(0.99" in latency and "rate(mt_request_duration_seconds_bucket" in latency
    assert re.search(r"sum by \((le, model|model, le)\)", latency)

    errors = rules["TranslatorHighErrorRatio"]["expr"]
    excluded = re.search(r'code!~"([^"]+)"', errors)
    assert excluded, "the error ratio must leave out OK and client errors"
    codes = set(excluded.group(1).split("|"))
    assert {"OK", "INVALID_ARGUMENT"} <= codes, "a malformed request is not a server error"
    assert not codes & {"INTERNAL", "UNAVAILABLE", "UNKNOWN", "RESOURCE_EXHAUSTED", "DEADLINE_EXCEEDED"}
    assert re.search(r"and\s+sum by \(model\) \(rate\(mt_requests_total\[5m\]\)\) >= 0\.1", errors), "a traffic guard"

    queue = rules["TranslatorQueueNearlyFull"]["expr"]
    assert re.search(r"mt_queue_depth\s*/\s*mt_queue_capacity\s*>\s*0\.8", queue)
    assert re.search(r"up\{[^}]*\}\s*==\s*0", rules["TranslatorInstanceDown"]["expr"])
    assert rules["TranslatorAbsent"]["expr"].strip() == "absent(mt_build_info)"
    fallback = rules["TranslatorRunsOnCPUInsteadOfCUDA"]["expr"]
    assert 'requested_provider="CUDAExecutionProvider"' in fallback and 'provider!="CUDAExecutionProvider"' in fallback


def test_kubernetes_config_scrapes_annotated_pods() -> None:
    config = yaml.safe_load(PROMETHEUS_K8S_CONFIG.read_text())
    [job] = config["scrape_configs"]
    sources = {label for rule in job["relabel_configs"] for label in rule.get("source_labels", [])}
    deployment = yaml.safe_load((K8S_DIR / "deployment.yaml").read_text())
    for annotation in deployment["spec"]["template"]["metadata"]["annotations"]:
        meta = "__meta_kubernetes_pod_annotation_" + re.sub(r"[^a-zA-Z0-9_]", "_", annotation)
        assert meta in sources, f"{annotation} is not used by {PROMETHEUS_K8S_CONFIG.name}"
    # job="translator" in k8s as in compose, so the InstanceDown alert matches both.
    assert "__meta_kubernetes_pod_label_app_kubernetes_io_name" in sources
    assert deployment["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/name"] == "translator"
