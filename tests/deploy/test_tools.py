"""A missing tool skips a test locally and fails it under CI."""

from __future__ import annotations

import pytest

from tests.deploy import tools

ABSENT = "mt-serve-no-such-tool"


@pytest.mark.parametrize(("in_ci", "outcome"), [(False, pytest.skip.Exception), (True, pytest.fail.Exception)])
def test_a_missing_tool_skips_locally_and_fails_under_ci(
    monkeypatch: pytest.MonkeyPatch, in_ci: bool, outcome: type[BaseException]
) -> None:
    monkeypatch.setattr(tools, "IN_CI", in_ci)
    ran = []

    @tools.requires(ABSENT)
    def needs_the_tool() -> None:
        ran.append(True)

    with pytest.raises(outcome, match=f"{ABSENT} not installed"):
        needs_the_tool()
    assert not ran


def test_a_present_tool_runs_the_test() -> None:
    ran = []

    @tools.requires("sh")
    def needs_sh() -> None:
        ran.append(True)

    needs_sh()
    assert ran
