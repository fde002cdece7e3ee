"""docker-compose.yml: the compose specification's schema, then how the services fit together."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.compose_file import MissingVariable, load_compose, published
from tests.deploy.paths import COMPOSE_FILE, DEPLOY, GRAFANA_DASHBOARD_PROVIDER, PROMETHEUS_CONFIG, ROOT
from tests.deploy.stack import BUILD, DOWN, UP, compose_command

# The one variable compose requires; everything else has a default.
REQUIRED_ENV = {"GRAFANA_ADMIN_PASSWORD": "not-a-default"}
LOCAL_OVERRIDE = ROOT / "docker-compose.local.yml"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    """The compose file as an operator who sets only the required variables gets it."""
    return load_compose(REQUIRED_ENV)


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


@pytest.mark.parametrize("path", [COMPOSE_FILE, LOCAL_OVERRIDE], ids=lambda p: p.name)
def test_matches_compose_spec_schema(path: Path) -> None:
    # check-jsonschema ships the compose-spec schema (vendor.compose-spec): no network needed.
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "check_jsonschema",
            "--builtin-schema",
            "vendor.compose-spec",
            str(path),
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
    host_ports = [host for service in (cpu, gpu) for _, host in published(service).values()]
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
    assert 9400 in published(compose["services"]["translator"])


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


def test_monitoring_ports_are_bound_to_loopback(compose: dict[str, Any]) -> None:
    # Prometheus' lifecycle API (/-/quit) and Grafana's login must not be open to the network by default.
    services = compose["services"]
    for name, port in (("prometheus", 9090), ("grafana", 3000), ("translator", 9400), ("translator-gpu", 9400)):
        assert published(services[name])[port][0] == "127.0.0.1", name
    assert published(services["translator"])[50051] == ("0.0.0.0", 50051)


def test_published_ports_can_be_moved() -> None:
    env = {**REQUIRED_ENV, "TRANSLATOR_GRPC_BIND": "127.0.0.1", "TRANSLATOR_GRPC_PORT": "41001"}
    env |= {"TRANSLATOR_METRICS_PORT": "41002", "PROMETHEUS_PORT": "41003", "GRAFANA_PORT": "41004"}
    env |= {"TRANSLATOR_HTTP_PORT": "41005"}
    services = load_compose(env)["services"]
    assert published(services["translator"]) == {
        50051: ("127.0.0.1", 41001),
        8080: ("127.0.0.1", 41005),
        9400: ("127.0.0.1", 41002),
    }
    assert published(services["prometheus"]) == {9090: ("127.0.0.1", 41003)}
    assert published(services["grafana"]) == {3000: ("127.0.0.1", 41004)}


def test_grafana_admin_password_comes_from_the_environment(compose: dict[str, Any]) -> None:
    env = compose["services"]["grafana"]["environment"]
    assert env["GF_SECURITY_ADMIN_PASSWORD"] == REQUIRED_ENV["GRAFANA_ADMIN_PASSWORD"]
    with pytest.raises(MissingVariable, match="GRAFANA_ADMIN_PASSWORD"):
        load_compose({})
    with pytest.raises(MissingVariable, match="GRAFANA_ADMIN_PASSWORD"):
        load_compose({"GRAFANA_ADMIN_PASSWORD": ""})


@pytest.mark.parametrize("cpus", [None, "1", "4"])
def test_limits_and_threads_match(cpus: str | None) -> None:
    env = REQUIRED_ENV if cpus is None else {**REQUIRED_ENV, "TRANSLATOR_CPUS": cpus}
    services = load_compose(env)["services"]
    for name, service in services.items():
        limits = service["deploy"]["resources"]["limits"]
        assert float(limits["cpus"]) > 0 and re.fullmatch(r"\d+[kmg]", limits["memory"]), name
    for name in ("translator", "translator-gpu"):
        limits = services[name]["deploy"]["resources"]["limits"]
        threads = services[name]["environment"]["MT_INTRA_OP_THREADS"]
        assert int(threads) == float(limits["cpus"]) == float(cpus or 2), name


def test_logs_are_rotated(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        logging = service["logging"]
        assert logging["driver"] == "json-file", name
        assert re.fullmatch(r"\d+[kmg]", logging["options"]["max-size"]) and int(logging["options"]["max-file"]) > 1


def test_local_override_replaces_only_images() -> None:
    override = yaml.safe_load(LOCAL_OVERRIDE.read_text())["services"]
    assert set(override) == {"translator", "prometheus"}, "Grafana has no Debian package: not in the local run"
    assert override["translator"]["image"] != load_compose(REQUIRED_ENV)["services"]["translator"]["image"]
    assert set(override["translator"]["build"]["args"]) == {"PYTHON_IMAGE"}
    assert override["prometheus"]["image"].startswith("localhost/")


def test_readme_gives_the_commands_the_stack_test_runs() -> None:
    readme = (DEPLOY / "README.md").read_text()
    section = readme[readme.index("### Without an image registry") :]
    block = section[section.index("```sh") : section.index("```", section.index("```sh") + 5)]
    lines = [line.split("#")[0].strip() for line in block.splitlines()]
    assert "sudo deploy/local/build-base-images.sh" in lines
    assert "BUILDAH_FORMAT=docker " + " ".join(compose_command("mt-serve", *BUILD)) in lines
    for args in (UP, DOWN):
        assert " ".join(compose_command("mt-serve", *args)) in lines
