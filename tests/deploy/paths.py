"""Where the deployment files are, and how to find the checking tools."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
DOCKERFILE = DEPLOY / "Dockerfile"
COMPOSE_FILE = ROOT / "docker-compose.yml"
PROMETHEUS_DIR = DEPLOY / "prometheus"
PROMETHEUS_CONFIG = PROMETHEUS_DIR / "prometheus.yml"
PROMETHEUS_K8S_CONFIG = PROMETHEUS_DIR / "prometheus-k8s.yml"
ALERT_RULES = PROMETHEUS_DIR / "alerts.yml"
ALERT_RULE_TESTS = PROMETHEUS_DIR / "alerts.test.yml"
GRAFANA_DIR = DEPLOY / "grafana"
GRAFANA_DATASOURCE = GRAFANA_DIR / "provisioning" / "datasources" / "prometheus.yml"
GRAFANA_DASHBOARD_PROVIDER = GRAFANA_DIR / "provisioning" / "dashboards" / "translator.yml"
DASHBOARDS = sorted((GRAFANA_DIR / "dashboards").glob("*.json"))
K8S_DIR = DEPLOY / "k8s"


def find_tool(name: str) -> str | None:
    """A tool from the running interpreter's environment (the dev extra), else from PATH."""
    beside = Path(sys.executable).parent / name
    if beside.is_file():
        return str(beside)
    return shutil.which(name)
