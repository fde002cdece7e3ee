"""A test that needs a missing tool or corpus is skipped locally and fails in CI (CI=true)."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytest_plugins = ["pytester"]

SUITE = """
import pytest
from tests.deploy.tools import missing, requires

@requires("mt-serve-no-such-tool")
def test_marked():
    pass

def test_checked_while_running():
    missing("mt-serve-no-such-tool not installed")

@requires("sh")
def test_present():
    pass
"""


@pytest.mark.parametrize(
    ("ci", "outcomes"), [("", {"skipped": 2, "passed": 1}), ("true", {"errors": 1, "failed": 1, "passed": 1})]
)
def test_missing_tools_skip_locally_and_fail_in_ci(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, ci: str, outcomes: dict[str, int]
) -> None:
    monkeypatch.setenv("CI", ci)
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    pytester.makeconftest("from tests.conftest import pytest_runtest_makereport  # noqa: F401\n")
    pytester.makepyfile(SUITE)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(**outcomes)
    if ci:
        result.stdout.fnmatch_lines(["*mt-serve-no-such-tool not installed*CI=true: every test must run*"])
