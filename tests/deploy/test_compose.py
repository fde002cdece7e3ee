"""docker-compose.yml: the compose specification's schema, then how the services fit together."""

from __future__ import annotations

import re
import subprocess
import sys
from typing import Any

import pytest
import yaml

from tests.deploy.paths import COMPOSE_FILE, GRAFANA_DASHBOARD_PROVIDER, PROMETHEUS_CONFIG, ROOT


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def seconds(duration: str) -> float:
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    return sum(float(n) * units[u] for n, u in re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h)", duration))


def bind_mounts(service: dict[str, Any]) -> dict[str, str]:
    """container path -> host path, for the ./relative bind mounts."""
    mounts = {}
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith("."):
            mounts[target] = source
    return mounts


def test_matches_compose_spec_schema() -> None:
    # check-jsonschema ships the compose-spec schema (vendor.compose-spec): no network needed.
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "check_jsonschema",
            "--builtin-schema",
            "vendor.compose-spec",
            str(COMPOSE_FILE),
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_services(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert {"translator", "translator-gpu", "prometheus", "grafana"} <= set(services)
    for name, service in services.items():
        assert "healthcheck" in service, f"{name} has no healthcheck"
        if "image" in service and "build" not in service:
            assert re.search(r":[\w.-]+$", service["image"]) and not service["image"].endswith(":latest"), (
                f"{name}: pin the image tag"
            )


def test_translator_builds_both_variants(compose: dict[str, Any]) -> None:
    cpu, gpu = compose["services"]["translator"], compose["services"]["translator-gpu"]
    for service, variant in ((cpu, "cpu"), (gpu, "cuda")):
        assert (ROOT / service["build"]["context"] / service["build"]["dockerfile"]).is_file()
        assert service["build"]["args"]["VARIANT"] == variant
        assert service["healthcheck"]["test"][-1] == "/app/healthcheck.py"
        grace = int(service["environment"]["MT_GRACE_PERIOD_S"])
        assert seconds(service["stop_grace_period"]) > grace, "stop_grace_period must exceed MT_GRACE_PERIOD_S"
    assert "profiles" not in cpu
    assert gpu["profiles"] == ["gpu"]
    devices = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert devices and "gpu" in devices[0]["capabilities"]
    assert "CUDAExecutionProvider" in gpu["environment"]["MT_PROVIDERS"]
    host_ports = [port.split(":")[0] for service in (cpu, gpu) for port in service["ports"]]
    assert len(host_ports) == len(set(host_ports)), "both variants can run at once"


def test_startup_order(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert services["grafana"]["depends_on"]["prometheus"]["condition"] == "service_healthy"
    assert "condition" in services["prometheus"]["depends_on"]["translator"]


def test_bind_mounts_exist(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        for source in bind_mounts(service).values():
            assert (ROOT / source).exists(), f"{name} mounts missing {source}"


def test_prometheus_scrapes_translator(compose: dict[str, Any]) -> None:
    prometheus = compose["services"]["prometheus"]
    assert bind_mounts(prometheus)["/etc/prometheus"] == "./deploy/prometheus"
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    targets = [t for job in config["scrape_configs"] for sc in job.get("static_configs", []) for t in sc["targets"]]
    assert "translator:9400" in targets
    assert "9400:9400" in compose["services"]["translator"]["ports"]


def test_grafana_shows_dashboard_without_login(compose: dict[str, Any]) -> None:
    grafana = compose["services"]["grafana"]
    env = grafana["environment"]
    assert env["GF_AUTH_ANONYMOUS_ENABLED"] == "true"
    assert env["GF_AUTH_ANONYMOUS_ORG_ROLE"] == "Viewer"
    mounts = bind_mounts(grafana)
    assert mounts["/etc/grafana/provisioning"] == "./deploy/grafana/provisioning"
    # The provider's folder and the home dashboard are container paths: map them back.
    provider = yaml.safe_load(GRAFANA_DASHBOARD_PROVIDER.read_text())["providers"][0]
    dashboards_in_container = provider["options"]["path"]
    assert dashboards_in_container in mounts
    home = env["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home.startswith(dashboards_in_container + "/")
    assert (ROOT / mounts[dashboards_in_container] / home.rsplit("/", 1)[1]).is_file()
