"""`make help` lists every target of the Makefile with its `##` description."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from tests.deploy.paths import ROOT

MAKEFILE = ROOT / "Makefile"


@pytest.mark.skipif(shutil.which("make") is None, reason="make not installed")
def test_help_lists_every_target_with_its_description() -> None:
    text = MAKEFILE.read_text()
    phony = re.search(r"^\.PHONY:(.*)$", text, re.M)
    assert phony
    described = dict(re.findall(r"^([\w-]+):[^#\n]*## (.+)$", text, re.M))
    assert set(phony.group(1).split()) == set(described), "every phony target needs a ## description"
    result = subprocess.run(["make", "-s", "-C", str(ROOT)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    listed = dict(line.strip().split(None, 1) for line in result.stdout.splitlines())
    assert listed == described
