"""Tests that need something outside the project (a tool, the corpus): skipped here when it is missing, failed in CI.

CI (`CI=true`) installs every tool and has the corpus, so a test skipped there for want of one would hide coverage:
tests/conftest.py turns such skips into failures.
"""

from __future__ import annotations

import os

IN_CI = os.environ.get("CI", "").lower() == "true"
PREFIX = "missing: "


def missing(what: str) -> str:
    """The skip reason of a test that cannot run without `what`."""
    return PREFIX + what


def is_missing_reason(message: str) -> bool:
    """Whether a skip message (pytest's "Skipped: <reason>") says a requirement is missing."""
    return message.removeprefix("Skipped: ").startswith(PREFIX)
