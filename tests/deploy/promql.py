"""Every PromQL expression the deployment uses: Grafana panel queries and alert rules.

    extract_promql() -> list[PromQLExpr]

Grafana variables ($model, $__rate_interval, ...) are replaced by the values in
``variables`` so that each expression can be sent to a real Prometheus as is.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, NamedTuple

import yaml

from tests.deploy.paths import ALERT_RULES, DASHBOARDS

# What Grafana would put in for the dashboard's variables with "All" selected.
GRAFANA_VARIABLES: Mapping[str, str] = {
    "__rate_interval": "1m",
    "__interval": "15s",
    "__range": "1h",
    "model": ".*",
    "instance": ".*",
}


class PromQLExpr(NamedTuple):
    # e.g. "translator.json: panel 'Translate p99' A", "alerts.yml: alert TranslatorInstanceDown"
    source: str
    expr: str


def extract_promql(
    dashboards: Iterable[Path] = DASHBOARDS,
    rule_files: Iterable[Path] = (ALERT_RULES,),
    variables: Mapping[str, str] | None = GRAFANA_VARIABLES,
) -> list[PromQLExpr]:
    """All PromQL in the given dashboards and rule files, dashboards first.

    With ``variables=None`` dashboard queries keep their Grafana variables.
    """
    found: list[PromQLExpr] = []
    for path in dashboards:
        found.extend(dashboard_promql(path, variables))
    for path in rule_files:
        found.extend(rules_promql(path))
    return found


def dashboard_promql(path: Path, variables: Mapping[str, str] | None = GRAFANA_VARIABLES) -> list[PromQLExpr]:
    dashboard = json.loads(Path(path).read_text())
    found = []
    for panel in iter_panels(dashboard):
        for target in panel.get("targets", []):
            expr = target.get("expr", "").strip()
            if not expr:
                continue
            if variables is not None:
                expr = substitute_variables(expr, variables)
            source = f"{Path(path).name}: panel {panel.get('title', panel.get('id'))!r} {target.get('refId', '')}"
            found.append(PromQLExpr(source.strip(), expr))
    return found


def rules_promql(path: Path) -> list[PromQLExpr]:
    rules = yaml.safe_load(Path(path).read_text())
    found = []
    for group in rules.get("groups", []):
        for rule in group.get("rules", []):
            kind, name = ("alert", rule["alert"]) if "alert" in rule else ("record", rule["record"])
            found.append(PromQLExpr(f"{Path(path).name}: {kind} {name}", str(rule["expr"]).strip()))
    return found


def iter_panels(dashboard: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, including those nested in collapsed rows."""
    for panel in dashboard.get("panels", []):
        yield panel
        yield from iter_panels(panel)


_VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\[\[(\w+)\]\]|\$(\w+)")


def substitute_variables(expr: str, variables: Mapping[str, str]) -> str:
    """Replace Grafana's $name, ${name}, ${name:format} and [[name]]; unknown names raise KeyError."""

    def value(match: re.Match[str]) -> str:
        name = next(group for group in match.groups() if group)
        return variables[name]

    return _VARIABLE.sub(value, expr)


_STRING = re.compile(r'"(?:[^"\\]|\\.)*"' + r"|'(?:[^'\\]|\\.)*'|`[^`]*`")
_MATCHERS = re.compile(r"\{[^}]*\}")
_RANGE = re.compile(r"\[[^\]]*\]")
_MODIFIER_CLAUSE = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_OFFSET = re.compile(r"\boffset\s+-?\w+")
_IDENTIFIER = re.compile(r"(?<![\w.:])([a-zA-Z_:][a-zA-Z0-9_:]*)(?![\w:])(?!\s*\()")
_KEYWORDS = frozenset(
    [
        "and",
        "or",
        "unless",
        "bool",
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "offset",
        "inf",
        "nan",
        "Inf",
        "NaN",
    ]
)


def metric_names(expr: str) -> set[str]:
    """The metric names an expression selects (bare names and {__name__="..."} are both found)."""
    names = set(re.findall(r'__name__\s*=\s*"([^"]+)"', expr))
    text = _STRING.sub('""', expr)
    text = _MATCHERS.sub("{}", text)
    text = _RANGE.sub("", text)
    text = _MODIFIER_CLAUSE.sub(" ", text)
    text = _OFFSET.sub(" ", text)
    names.update(name for name in _IDENTIFIER.findall(text) if name not in _KEYWORDS)
    return names


def label_values_metrics(dashboard_path: Path) -> set[str]:
    """Metrics behind the dashboard's query variables, e.g. label_values(mt_model_info, model)."""
    dashboard = json.loads(Path(dashboard_path).read_text())
    names: set[str] = set()
    for variable in dashboard.get("templating", {}).get("list", []):
        query = variable.get("query")
        text = query.get("query", "") if isinstance(query, dict) else str(query or "")
        match = re.match(r"\s*label_values\(\s*(.+?)\s*,\s*\w+\s*\)\s*$", text)
        if match:
            names |= metric_names(match.group(1))
    return names
