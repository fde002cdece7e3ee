"""docker-compose.yml as compose reads it: YAML, then ${VARIABLE} interpolation from an environment."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from tests.deploy.paths import COMPOSE_FILE

# ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?error}, ${NAME?error}; $$ is a literal $.
_VARIABLE = re.compile(r"\$\$|\$\{(\w+)(?:(:?[-?])([^}]*))?\}")


class MissingVariable(ValueError):
    """A ${NAME:?error} variable that the environment does not set."""


def interpolate(value: Any, env: Mapping[str, str]) -> Any:
    """`value` with every variable replaced, as compose does, recursively through lists and mappings."""
    if isinstance(value, dict):
        return {key: interpolate(item, env) for key, item in value.items()}
    if isinstance(value, list):
        return [interpolate(item, env) for item in value]
    if isinstance(value, str):
        return _VARIABLE.sub(lambda match: _substitute(match, env), value)
    return value


def _substitute(match: re.Match[str], env: Mapping[str, str]) -> str:
    name, operator, argument = match.groups()
    if name is None:
        return "$"
    unset = env.get(name) is None if operator in ("-", "?") else not env.get(name)
    if unset and operator in (":-", "-"):
        return str(argument)
    if unset and operator in (":?", "?"):
        raise MissingVariable(f"{name}: {argument}")
    return env.get(name, "")


def load_compose(env: Mapping[str, str], path: Path = COMPOSE_FILE) -> dict[str, Any]:
    """The compose file with variables taken from `env` (not from the test's own environment)."""
    loaded: dict[str, Any] = interpolate(yaml.safe_load(path.read_text()), env)
    return loaded


def published(service: Mapping[str, Any]) -> dict[int, tuple[str, int]]:
    """container port -> (host address, host port) for a service's "ADDRESS:HOST:CONTAINER" ports."""
    ports = {}
    for port in service.get("ports", []):
        address, host, container = str(port).rsplit(":", 2)
        ports[int(container)] = (address, int(host))
    return ports
