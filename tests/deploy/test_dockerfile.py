"""deploy/Dockerfile: lint with hadolint, then the properties the runtime image must have."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.deploy.paths import DEPLOY, DOCKERFILE, ROOT, find_tool

# The local base images' Containerfiles (deploy/local/build-base-images.sh).
LOCAL_CONTAINERFILES = sorted((DEPLOY / "local").glob("*.Containerfile"))


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    result = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, args = line.partition(" ")
            result.append((keyword.upper(), args.strip()))
    return result


def stages() -> dict[str, list[tuple[str, str]]]:
    """Instructions per build stage, by stage name (in file order)."""
    result: dict[str, list[tuple[str, str]]] = {}
    current = None
    for keyword, args in instructions():
        if keyword == "FROM":
            current = args.split()[-1] if " AS " in args.upper() else args
            result[current] = []
        elif current is not None:
            result[current].append((keyword, args))
    return result


@pytest.mark.parametrize("path", [DOCKERFILE, *LOCAL_CONTAINERFILES], ids=lambda p: p.name)
def test_hadolint_passes(path: Path) -> None:
    hadolint = find_tool("hadolint")
    assert hadolint, "hadolint not found: install the dev extra (pip install -e '.[dev]')"
    result = subprocess.run([hadolint, "--no-color", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_variants_share_one_runtime_stage() -> None:
    all_stages = stages()
    assert list(all_stages)[-1] == "runtime", "the runtime image must be the default (last) target"
    assert {"base-cpu", "base-cuda", "builder", "runtime"} <= set(all_stages)
    froms = {args for keyword, args in instructions() if keyword == "FROM"}
    assert "base-${VARIANT} AS builder" in froms and "base-${VARIANT} AS runtime" in froms
    text = DOCKERFILE.read_text()
    assert re.search(r"^ARG VARIANT=cpu$", text, re.M)
    assert re.search(r"^ARG CUDA_IMAGE=nvidia/cuda:\S+-runtime-\S+$", text, re.M)
    assert "onnxruntime-gpu" in text


def test_runtime_stage() -> None:
    runtime = stages()["runtime"]
    keywords = [keyword for keyword, _ in runtime]
    users = [args for keyword, args in runtime if keyword == "USER"]
    assert users and users[-1].split(":")[0] not in ("0", "root"), "the service must not run as root"
    assert ("STOPSIGNAL", "SIGTERM") in runtime
    exposed = {port for keyword, args in runtime if keyword == "EXPOSE" for port in args.split()}
    assert {"50051", "9400"} <= exposed
    healthcheck = [args for keyword, args in runtime if keyword == "HEALTHCHECK"]
    assert len(healthcheck) == 1 and "/app/healthcheck.py" in healthcheck[0]
    assert "ENTRYPOINT" in keywords or "CMD" in keywords
    env = " ".join(args for keyword, args in runtime if keyword == "ENV")
    assert "MT_MODELS_ROOT=" in env


def test_runtime_has_no_training_code_torch_or_compilers() -> None:
    copies = [args for keyword, args in instructions() if keyword in ("COPY", "ADD")]
    for args in copies:
        sources = [word for word in args.split()[:-1] if not word.startswith("--")]
        assert not any(re.match(r"\.?/?model/?$", source) for source in sources), f"copies training code: {args}"
    runs = " ".join(args for keyword, args in instructions() if keyword == "RUN")
    for forbidden in ("torch", "gcc", "g++", "build-essential", "clang", "[train]"):
        assert forbidden not in runs, f"{forbidden} installed in the image"
    runtime_copies_from = [args for keyword, args in stages()["runtime"] if keyword == "COPY" and "--from=" in args]
    assert runtime_copies_from == ["--from=builder /opt/venv /opt/venv"]


def test_serving_dependencies_have_no_torch() -> None:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert not [dep for dep in project["dependencies"] if dep.lower().startswith("torch")]


def test_build_context_allows_what_the_dockerfile_copies() -> None:
    allowed = {
        line[1:].rstrip("/") for line in (ROOT / ".dockerignore").read_text().splitlines() if line.startswith("!")
    }
    local_copies = [args for keyword, args in instructions() if keyword == "COPY" and "--from=" not in args]
    for args in local_copies:
        for source in args.split()[:-1]:
            if not source.startswith("--"):
                assert source.rstrip("/") in allowed, f"{source} is excluded by .dockerignore"


@pytest.mark.parametrize("path", ["pyproject.toml", "service", "deploy/healthcheck.py"])
def test_copied_sources_exist(path: str) -> None:
    assert (ROOT / path).exists()
