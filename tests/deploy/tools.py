"""Tests that need a system tool: skipped where it is missing, failed in CI (see tests/support/environment.py)."""

from __future__ import annotations

from typing import NoReturn

import pytest

from tests.deploy.paths import find_tool
from tests.support.environment import missing as missing_reason

INSTALL_HINT = "run deploy/install-tools.sh as root"


def missing(reason: str) -> NoReturn:
    """Skips the running test for a missing tool or permission (a failure in CI)."""
    pytest.skip(missing_reason(reason))


def requires(*tools: str, hint: str = INSTALL_HINT) -> pytest.MarkDecorator:
    """A mark: the test runs only where every tool is found (find_tool); else as `missing`."""
    absent = [tool for tool in tools if find_tool(tool) is None]
    return pytest.mark.skipif(bool(absent), reason=missing_reason(f"{', '.join(absent)} not installed: {hint}"))
