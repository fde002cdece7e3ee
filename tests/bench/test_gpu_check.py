"""`make gpu-check` on a machine without a GPU, and the parts of it that run on a CPU.

The GPU steps themselves (CUDA tests, benchmark, load test on CUDA) need an NVIDIA GPU: `make gpu-check` runs them.
nvidia-smi cannot run here either: a script printing what it prints stands in for it where its output is parsed.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import onnxruntime as ort
import pytest
import sentencepiece as spm

from bench import gpu_check
from bench.engine_bench import cuda_variants
from bench.engine_bench import main as engine_bench
from tests.support.tiny import write_source_sentences

ROOT = Path(__file__).resolve().parents[2]
NO_CUDA = pytest.mark.skipif("CUDAExecutionProvider" in ort.get_available_providers(), reason="CUDA is available here")
SMI_HEADER = "| NVIDIA-SMI 575.57.08   Driver Version: 575.57.08   CUDA Version: {cuda}   |"


def fake_nvidia_smi(folder: Path, cuda: str) -> dict[str, str]:
    """An environment whose PATH starts with an nvidia-smi printing one H100 and a driver running CUDA `cuda`."""
    script = folder / "nvidia-smi"
    query = "NVIDIA H100 80GB HBM3, 81559 MiB, 575.57.08"
    script.write_text(
        f'#!/bin/sh\ncase "$1" in --query-gpu=*) echo "{query}";; *) echo "{SMI_HEADER.format(cuda=cuda)}";; esac\n'
    )
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return {**os.environ, "PATH": f"{folder}{os.pathsep}{os.environ['PATH']}"}


def run_gpu_preflight(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bench.gpu"], cwd=ROOT, env=env, capture_output=True, text=True)


@pytest.mark.skipif(shutil.which("make") is None, reason="make not installed")
@pytest.mark.skipif(shutil.which("nvidia-smi") is not None, reason="this machine has nvidia-smi")
def test_make_gpu_check_stops_with_one_error_line_before_installing(tmp_path: Path) -> None:
    venv = tmp_path / "venv-cuda"
    done = subprocess.run(
        ["make", "--no-print-directory", "gpu-check", f"PYTHON={sys.executable}", f"CUDA_VENV={venv}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert done.returncode != 0
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert errors == [
        "error: no NVIDIA GPU to run on (nvidia-smi is not installed): make gpu-check needs an NVIDIA "
        "GPU and its driver"
    ]
    assert not venv.exists()


def test_a_driver_older_than_cuda_13_is_named(tmp_path: Path) -> None:
    done = run_gpu_preflight(fake_nvidia_smi(tmp_path, "12.4"))
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "error: the NVIDIA driver 575.57.08 runs CUDA 12.4; onnxruntime-gpu 1.31 needs CUDA 13 (driver 580 or newer)"
    )


def test_a_gpu_with_a_cuda_13_driver_passes(tmp_path: Path) -> None:
    done = run_gpu_preflight(fake_nvidia_smi(tmp_path, "13.0"))
    assert (done.returncode, done.stdout.strip()) == (0, "NVIDIA H100 80GB HBM3, 81559 MiB, driver 575.57.08")


def test_cuda_variants_are_fp16_then_fp32(tiny_model_dir: Path) -> None:
    assert cuda_variants(tiny_model_dir) == ["fp16", "fp32"]


@NO_CUDA
def test_engine_bench_never_reports_the_cpu_as_cuda(tiny_model_dir: Path, tmp_path: Path) -> None:
    text_file = write_source_sentences(tmp_path / "sentences.txt", 2)
    argv = ["--model-dir", str(tiny_model_dir), "--text-file", str(text_file), "--batch-sizes", "1", "--cuda"]
    with pytest.raises(SystemExit, match="error: onnxruntime could not run CUDAExecutionProvider"):
        engine_bench([*argv, "--output", str(tmp_path / "results")])


@NO_CUDA
def test_load_test_refuses_a_service_that_fell_back_to_the_cpu(tiny_model_dir: Path, tmp_path: Path) -> None:
    text_file = write_source_sentences(tmp_path / "sentences.txt", 4)
    with pytest.raises(gpu_check.CheckFailed, match="not CUDAExecutionProvider"):
        gpu_check.run_load_test(tiny_model_dir.parent, text_file, 4, tmp_path)
    assert not (tmp_path / "load").exists()


def test_made_up_sentences_without_the_corpus(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(gpu_check, "CORPUS_DIR", tmp_path / "no-corpus")
    path, source = gpu_check.sentence_file(tiny_model_dir, 20, tmp_path / "sentences.en")
    sentences = path.read_text().splitlines()
    assert len(sentences) == 20 and "made-up" in source
    tokenizer = spm.SentencePieceProcessor(model_file=str(tiny_model_dir / "tokenizer.model"))
    for sentence in sentences:
        words = sentence.rstrip(".").lower().split()
        assert len(words) == 12
        assert all(tokenizer.piece_to_id(f"\u2581{w}") != tokenizer.unk_id() for w in words)
