"""A real Prometheus scrapes the real service: every dashboard query and alert rule runs on live data."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
import yaml

from bench.server import free_ports
from tests.deploy.paths import ALERT_RULES, find_tool
from tests.deploy.promql import PromQLExpr, extract_promql, rules_promql
from tests.integration.calls import mixed_traffic
from tests.service.harness import wait_for
from tests.support.environment import missing
from tests.support.service_process import ServiceProcess

PROMETHEUS = find_tool("prometheus")
pytestmark = pytest.mark.skipif(
    PROMETHEUS is None,
    reason=missing("prometheus: run deploy/install-tools.sh (as root, installs Debian's 'prometheus')"),
)
JOB = "translator"  # the job name the dashboard and alerts.yml select (job=~"translator.*")
DATA_TIMEOUT_S = 20.0  # rate() over a new series needs two scrapes of it


class Prometheus:
    """Prometheus on 127.0.0.1 scraping `target` and evaluating alerts.yml every second, storing in `directory`."""

    def __init__(self, target: str, directory: Path) -> None:
        [self.port] = free_ports(1)
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(ALERT_RULES)],
            "scrape_configs": [{"job_name": JOB, "static_configs": [{"targets": [target]}]}],
        }
        config_file = directory / "prometheus.yml"
        config_file.write_text(yaml.safe_dump(config))
        self.log_file = directory / "prometheus.log"
        assert PROMETHEUS is not None
        command = [
            PROMETHEUS,
            f"--config.file={config_file}",
            f"--storage.tsdb.path={directory / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
        ]
        with self.log_file.open("wb") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)

    def get(self, path: str, **params: str) -> dict[str, Any]:
        """The JSON answer of the HTTP API (error answers included) to GET /api/v1/`path`."""
        url = f"http://127.0.0.1:{self.port}/api/v1/{path}?{urlencode(params)}"
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                answer: dict[str, Any] = json.load(response)
        except urllib.error.HTTPError as error:  # 4xx/5xx carry the error as JSON too
            answer = json.load(error)
        return answer

    def query(self, expr: str) -> dict[str, Any]:
        return self.get("query", query=expr)

    def ready(self) -> bool:
        assert self.process.poll() is None, self.log_file.read_text()
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/-/ready", timeout=2) as response:
                return response.status == 200
        except OSError:
            return False

    def rules(self) -> list[dict[str, Any]]:
        return [rule for group in self.get("rules")["data"]["groups"] for rule in group["rules"]]

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)


@pytest.fixture
def prometheus(service: ServiceProcess, tmp_path: Path) -> Iterator[Prometheus]:
    server = Prometheus(f"127.0.0.1:{service.metrics_port}", tmp_path)
    try:
        wait_for(server.ready, timeout=30, interval=0.2)
        yield server
    finally:
        server.stop()


def test_every_dashboard_query_and_alert_rule_runs_on_live_data(
    service: ServiceProcess, prometheus: Prometheus
) -> None:
    wait_for(lambda: bool(prometheus.query(f'up{{job="{JOB}"}} == 1')["data"]["result"]), timeout=15, interval=0.2)
    with service.client() as client:
        mixed_traffic(client)
    expressions = extract_promql()
    alerts = rules_promql(ALERT_RULES)
    panels = [e for e in expressions if e not in alerts]
    assert panels and alerts

    end = time.monotonic() + DATA_TIMEOUT_S
    while (empty := [e for e in panels if not results(prometheus, e)]) and time.monotonic() < end:
        time.sleep(0.5)
    assert not empty, f"no data after {DATA_TIMEOUT_S} s for {[e.source for e in empty]}"
    for expression in alerts:
        results(prometheus, expression)

    wait_for(lambda: all(r["health"] != "unknown" for r in prometheus.rules()), timeout=10, interval=0.2)
    rules = prometheus.rules()
    assert {r["name"] for r in rules} == {e.source.rsplit(" ", 1)[-1] for e in alerts}
    assert [(r["name"], r["health"], r.get("lastError", "")) for r in rules] == [(r["name"], "ok", "") for r in rules]


def results(prometheus: Prometheus, expression: PromQLExpr) -> list[Any]:
    """The result of an instant query, which must succeed."""
    answer = prometheus.query(expression.expr)
    assert answer["status"] == "success", f"{expression.source}: {answer}"
    result: list[Any] = answer["data"]["result"]
    return result
