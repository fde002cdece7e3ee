"""What a benchmark ran on, and the sentences it translates."""

from __future__ import annotations

import gzip
import json
import os
import platform
from importlib import metadata
from pathlib import Path

from bench.gpu import gpus

CORPUS_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "multi30k"
SPLIT = "test_2016_flickr"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "absent"


def _gpus() -> str | None:
    """The NVIDIA GPUs nvidia-smi lists (name, memory, driver), or None."""
    try:
        return "; ".join(f"{g['name']} ({g['memory']}, driver {g['driver']})" for g in gpus())
    except RuntimeError:
        return None


def describe_machine() -> dict[str, str]:
    """CPU, core count, NVIDIA GPUs if any, and library versions, with a one-line summary for report headers."""
    info = {
        "cpu": _cpu_model(),
        "cores": str(os.cpu_count()),
        "python": platform.python_version(),
        **{p: _version(p) for p in ("onnxruntime", "onnxruntime-gpu", "torch", "ctranslate2", "grpcio")},
    }
    gpu, onnxruntime = _gpus(), ("onnxruntime-gpu" if info["onnxruntime"] == "absent" else "onnxruntime")
    info["summary"] = f"{info['cpu']}, {info['cores']} cores, {onnxruntime} {info[onnxruntime]}"
    if gpu is not None:
        info["gpu"] = gpu
        info["summary"] += f", GPU {gpu}"
    return info


def source_sentences(model_dir: Path, count: int, corpus_dir: Path = CORPUS_DIR) -> list[str]:
    """The first `count` Multi30k test sentences in the model's source language."""
    language = json.loads((model_dir / "manifest.json").read_text())["source_language"]
    return corpus_sentences(language, count, corpus_dir)


def corpus_sentences(language: str, count: int, corpus_dir: Path = CORPUS_DIR) -> list[str]:
    """The first `count` Multi30k test sentences in `language`."""
    path = corpus_dir / f"{SPLIT}.{language}.gz"
    if not path.is_file():
        raise SystemExit(f"benchmark sentences not found: {path} (the Multi30k corpus is expected beside the project)")
    with gzip.open(path, "rt", encoding="utf-8") as lines:
        return [line.strip() for _, line in zip(range(count), lines, strict=False)]


def read_sentences(text_file: Path) -> list[str]:
    """The non-blank lines of `text_file`, stripped."""
    sentences = [line.strip() for line in text_file.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not sentences:
        raise SystemExit(f"{text_file} has no sentences")
    return sentences


def benchmark_sentences(model_dir: Path, text_file: Path | None, count: int) -> list[str]:
    """The lines of `text_file` if given, else the first `count` Multi30k test sentences in the model's source
    language."""
    return read_sentences(text_file) if text_file is not None else source_sentences(model_dir, count)
