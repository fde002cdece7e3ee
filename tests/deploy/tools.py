"""Tests that need a system tool: skipped where it is missing, but failed under CI (CI=true), where
deploy/install-tools.sh must have installed it."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any, TypeVar

import pytest

from tests.deploy.paths import find_tool

IN_CI = os.environ.get("CI") == "true"
INSTALL_HINT = "run deploy/install-tools.sh as root"

Test = TypeVar("Test", bound=Callable[..., Any])


def missing(reason: str) -> None:
    """Skips the running test, or fails it under CI, for a missing tool or permission."""
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: tests may not skip for a missing tool)")
    pytest.skip(reason)


def requires(*tools: str, hint: str = INSTALL_HINT) -> Callable[[Test], Test]:
    """Decorator: the test runs only where every tool is found (find_tool), see `missing`."""
    absent = [tool for tool in tools if find_tool(tool) is None]
    if not absent:
        return lambda test: test
    reason = f"{', '.join(absent)} not installed: {hint}"

    def decorate(test: Test) -> Test:
        @functools.wraps(test)
        def unavailable(*args: Any, **kwargs: Any) -> None:
            missing(reason)

        return unavailable  # type: ignore[return-value]

    return decorate
