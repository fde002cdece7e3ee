"""deploy/requirements: the hash-locked serving dependencies the image installs, and the digest-pinned base images."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.deploy.paths import DEPLOY, DOCKERFILE, ROOT

REQUIREMENTS = DEPLOY / "requirements"
LOCKS = {"cpu": REQUIREMENTS / "cpu.txt", "cuda": REQUIREMENTS / "cuda.txt"}
# The Python each base image runs: the CPU image's tag, Ubuntu 24.04's python3 in the CUDA image.
UBUNTU_PYTHON = {"ubuntu22.04": "3.10", "ubuntu24.04": "3.12"}


def locked(path: Path) -> dict[str, list[tuple[str, list[str]]]]:
    """name -> [(pinned version, hashes)] (one entry per environment marker), from a `--generate-hashes` lock."""
    text = re.sub(r"\\\n", " ", path.read_text())
    pins: dict[str, list[tuple[str, list[str]]]] = {}
    for line in text.splitlines():
        line = line.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        spec, *hashes = [part.strip() for part in line.split("--hash=")]
        requirement = Requirement(spec)
        [pin] = requirement.specifier
        assert pin.operator == "==", f"{path.name}: {spec} is not pinned"
        pins.setdefault(canonicalize_name(requirement.name), []).append((pin.version, hashes))
    return pins


def serving_dependencies() -> list[Requirement]:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return [Requirement(r) for r in project["project"]["dependencies"] + project["build-system"]["requires"]]


def base_image_args() -> dict[str, str]:
    return dict(re.findall(r"^ARG (\w+_IMAGE)=(\S+)$", DOCKERFILE.read_text(), re.M))


@pytest.mark.parametrize("variant", LOCKS)
def test_every_serving_dependency_is_locked_with_hashes(variant: str) -> None:
    pins = locked(LOCKS[variant])
    swapped = {"onnxruntime": "onnxruntime-gpu"} if variant == "cuda" else {}
    for requirement in serving_dependencies():
        name = swapped.get(canonicalize_name(requirement.name), canonicalize_name(requirement.name))
        assert name in pins, f"{variant}: {requirement} is not in {LOCKS[variant].name}"
        for version, _ in pins[name]:
            assert requirement.name in swapped or requirement.specifier.contains(version, prereleases=True), (
                f"{variant}: {name}=={version} does not satisfy pyproject.toml's {requirement}"
            )
    for name, entries in pins.items():
        assert all(hashes and all(re.fullmatch(r"sha256:[0-9a-f]{64}", h) for h in hashes) for _, hashes in entries)
        assert not name.startswith(("torch", "nvidia-")), f"{variant}: {name} does not belong in the serving image"
    assert ("onnxruntime" in pins) == (variant == "cpu"), "one onnxruntime per image, both are module onnxruntime"


def test_dockerfile_installs_the_lock_with_hashes_only() -> None:
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    assert "--require-hashes" in text and "requirements/${VARIANT}.txt" in text
    # The package itself adds nothing: no index, no build isolation (setuptools comes from the lock).
    [install_package] = [line for line in text.splitlines() if "pip install" in line and " . " in f"{line} "]
    assert all(flag in install_package for flag in ("--no-deps", "--no-index", "--no-build-isolation"))


@pytest.mark.parametrize("arg", ["PYTHON_IMAGE", "CUDA_IMAGE"])
def test_base_images_are_pinned_by_digest(arg: str) -> None:
    image = base_image_args()[arg]
    assert re.fullmatch(r"[\w./-]+:[\w.-]+@sha256:[0-9a-f]{64}", image), f"{arg}={image}: pin tag@sha256:digest"


def test_both_variants_run_the_same_python() -> None:
    images = base_image_args()
    cpu_python = re.match(r"python:(\d+\.\d+)-", images["PYTHON_IMAGE"])
    ubuntu = re.search(r"-(ubuntu\d+\.\d+)@", images["CUDA_IMAGE"])
    assert cpu_python and ubuntu
    assert cpu_python.group(1) == UBUNTU_PYTHON[ubuntu.group(1)]
