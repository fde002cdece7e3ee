"""The HTTP port (API and page) is exposed by the image, published by compose and served by Kubernetes."""

from __future__ import annotations

import yaml

from service.config import Settings
from tests.deploy.paths import COMPOSE_FILE
from tests.deploy.test_dockerfile import stages
from tests.deploy.test_k8s import resources

PORT = Settings.model_fields["http_port"].default


def test_the_image_serves_and_exposes_it() -> None:
    runtime = stages()["runtime"]
    exposed = {port for keyword, args in runtime if keyword == "EXPOSE" for port in args.split()}
    env = " ".join(args for keyword, args in runtime if keyword == "ENV")
    assert str(PORT) in exposed and f"MT_HTTP_PORT={PORT}" in env


def test_compose_publishes_it() -> None:
    compose = yaml.safe_load(COMPOSE_FILE.read_text())
    for name in ("translator", "translator-gpu"):
        targets = [port.split(":")[-1] for port in compose["services"][name]["ports"]]
        assert str(PORT) in targets, name


def test_kubernetes_serves_it() -> None:
    everything = resources()
    [container] = everything[("Deployment", "translator")]["spec"]["template"]["spec"]["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert everything[("ConfigMap", "translator-config")]["data"]["MT_HTTP_PORT"] == str(ports["http"]) == str(PORT)
    service = everything[("Service", "translator-http")]["spec"]
    assert [(p["port"], p["targetPort"]) for p in service["ports"]] == [(PORT, "http")]
