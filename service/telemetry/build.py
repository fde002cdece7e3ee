"""The running build: package version, source revision, onnxruntime and Python versions (for mt_build_info)."""

from __future__ import annotations

import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import NamedTuple

REVISION_VARIABLE = "GIT_REVISION"  # set by an image build, where the source tree has no .git
PROJECT_ROOT = Path(__file__).resolve().parents[2]
UNKNOWN = "unknown"


class BuildInfo(NamedTuple):
    version: str
    revision: str
    onnxruntime: str
    python: str


def build_info() -> BuildInfo:
    """This process's build; `unknown` for what cannot be found out."""
    return BuildInfo(
        version=_version("mt-serve"),
        revision=os.environ.get(REVISION_VARIABLE) or _git_revision(),
        onnxruntime=_version("onnxruntime", "onnxruntime-gpu"),
        python=platform.python_version(),
    )


def _version(*distributions: str) -> str:
    """The version of the first of `distributions` that is installed."""
    for name in distributions:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return UNKNOWN


def _git_revision() -> str:
    """The commit of the source tree, when it is a git checkout."""
    if not (PROJECT_ROOT / ".git").exists():
        return UNKNOWN
    try:
        done = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.TimeoutExpired):
        return UNKNOWN
    return done.stdout.strip() if done.returncode == 0 and done.stdout.strip() else UNKNOWN
