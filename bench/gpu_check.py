"""`make gpu-check`: the engine and the service on CUDA, in minutes, on a machine with an NVIDIA GPU.

    python -m bench.gpu_check --output results/gpu-check [--checkpoint runs/en-fr/averaged.pt]

Runs in an environment with onnxruntime-gpu (the `cuda` extra; make gpu-check builds .venv-cuda):
1. the CUDA tests (tests/engine/test_cuda.py: fp16 with IO binding against fp32 on CPU, on the suite's tiny model);
2. the engine benchmark on CUDA (fp16, fp32) beside the CPU (int8), `bench.engine_bench --cuda`;
3. a short load test of the service on CUDA (`bench.load`, a few hundred requests).
The benchmark model is the checkpoint exported as fp32, int8 and fp16, or without one a model of the bundled models'
shape with random weights (speeds only: its translations run to the length limit). The sentences are the
Multi30k test set when it is beside the project, else made-up ones from the tokenizer's words. Writes
gpu_check.md and gpu_check.json (GPU, driver, onnxruntime, each step's outcome) and each step's own reports.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import shlex
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ElementTree
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import onnxruntime as ort

from bench import engine_bench
from bench.gpu import driver_cuda_version, gpus, problem
from bench.load import LevelResult, LoadSpec, Target, run_levels, write_report
from bench.load import markdown_table as load_table
from bench.machine import CORPUS_DIR, SPLIT, describe_machine
from bench.server import ROOT, ServerProcess
from service.client import TranslatorClient
from service.decoding.iobinding import CUDA

BUNDLED = ROOT / "models" / "en-fr"
TESTS = "tests/engine/test_cuda.py"  # its neighbours need the dev extra, which this environment does without
LOAD_LEVELS = (1, 16, 64)  # concurrent clients
CUDA_SERVER = {"MT_PROVIDERS": f"{CUDA},CPUExecutionProvider"}


class CheckFailed(Exception):
    """A step could not run at all (no CUDA provider, the service fell back to the CPU)."""


def run_cuda_tests(output: Path) -> dict[str, Any]:
    """The CUDA tests in a child process; its log in tests.txt, the counts from its JUnit XML."""
    junit = output / "tests.xml"
    command = [sys.executable, "-m", "pytest", "-m", "cuda", "-p", "no:cacheprovider", f"--junitxml={junit}", TESTS]
    with (output / "tests.txt").open("w") as log:
        done = subprocess.run(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    suite = ElementTree.parse(junit).getroot()
    suite = suite if suite.tag == "testsuite" else suite[0]
    counts = {key: int(suite.get(key, 0)) for key in ("tests", "failures", "errors", "skipped")}
    passed = done.returncode == 0 and counts["tests"] > 0 and counts["skipped"] == 0
    command_line = shlex.join(["python", *command[1:]])
    return {"command": command_line, "exit_status": done.returncode, **counts, "ok": passed}


def random_checkpoint(path: Path) -> Path:
    """A checkpoint of the bundled en-fr model's shape and tokenizer, with random weights."""
    import torch

    from model.checkpoint import save_checkpoint
    from model.model import ModelConfig, Transformer

    manifest = json.loads((BUNDLED / "manifest.json").read_text())
    torch.manual_seed(0)
    model = Transformer(ModelConfig(**manifest["model_config"])).eval()
    tokenizer = (BUNDLED / manifest["tokenizer"]).read_bytes()
    save_checkpoint(path, model, tokenizer, source_language="en", target_language="fr")
    return path


def export_benchmark_model(checkpoint: Path, models_root: Path) -> Path:
    """The checkpoint as model directory models_root/en-fr with fp32, int8 and fp16."""
    from model.export import default_version, export_model

    return export_model(checkpoint, models_root / "en-fr", "en-fr", default_version(), ("fp32", "int8", "fp16"))


def sentence_file(model_dir: Path, count: int, path: Path) -> tuple[Path, str]:
    """The first `count` Multi30k test sentences, else made-up sentences of 12 words of the model's vocabulary; the
    file and where its sentences come from."""
    import gzip

    import sentencepiece as spm

    corpus = CORPUS_DIR / f"{SPLIT}.en.gz"
    if corpus.is_file():
        with gzip.open(corpus, "rt", encoding="utf-8") as lines:
            sentences = [line.strip() for _, line in zip(range(count), lines, strict=False)]
        source = f"Multi30k {SPLIT}, first {len(sentences)} sentences"
    else:
        tokenizer = spm.SentencePieceProcessor(model_file=str(model_dir / "tokenizer.model"))
        pieces = (str(tokenizer.id_to_piece(i)) for i in range(tokenizer.get_piece_size()))
        words = [p[1:] for p in pieces if p.startswith("\u2581") and p[1:].isalpha() and len(p) > 3]
        rng = random.Random(0)
        sentences = [" ".join(rng.choices(words, k=12)).capitalize() + "." for _ in range(count)]
        source = f"{count} made-up sentences of 12 words of the tokenizer (the Multi30k test set is not at {corpus})"
    path.write_text("\n".join(sentences) + "\n")
    return path, source


def run_engine_bench(model_dir: Path, text_file: Path, sentences: int, output: Path) -> dict[str, Any]:
    """bench.engine_bench on CUDA (fp16, fp32) beside the CPU (int8), into output/engine."""
    argv = ["--model-dir", str(model_dir), "--text-file", str(text_file), "--sentences", str(sentences)]
    argv += ["--batch-sizes", "1", "16", "64", "--variants", "int8", "--cuda", "--output", str(output / "engine")]
    engine_bench.main(argv)
    report = json.loads((output / "engine" / "engine_bench.json").read_text())
    return {"command": shlex.join(["python", "-m", "bench.engine_bench", *argv]), "rows": report["rows"]}


def run_load_test(models_root: Path, text_file: Path, requests: int, output: Path) -> dict[str, Any]:
    """The service on CUDA (checked through ListModels), `requests` requests at each level of LOAD_LEVELS."""
    spec = LoadSpec(requests=requests, warmup=10)
    sentences = [line for line in text_file.read_text().splitlines() if line]
    with ServerProcess(models_root, CUDA_SERVER) as server:
        with TranslatorClient(server.address) as client:
            providers = {m.name: m.provider for m in client.list_models()}
        if set(providers.values()) != {CUDA}:
            raise CheckFailed(f"the service runs its models on {providers}, not {CUDA}: see its log")
        results = asyncio.run(run_levels(Target.of(server), sentences, spec, LOAD_LEVELS, progress=False))
        settings = server.settings
    report = {"command": "bench.gpu_check load test", "machine": describe_machine(), "server_settings": settings}
    report |= {"sentences": len(sentences), "load": asdict(spec)}
    write_report(output / "load", "load_cuda", report, results)
    return {"levels": [asdict(r) for r in results], "server_settings": settings}


def cuda_problem() -> str | None:
    """Why this onnxruntime cannot run CUDA, or None."""
    if CUDA in ort.get_available_providers():
        return None
    return f"onnxruntime {ort.__version__} has no {CUDA}: install the cuda extra, alone (make gpu-check does)"


def environment() -> dict[str, Any]:
    """GPUs, driver, onnxruntime and the CUDA it was built for, and the machine."""
    cuda = driver_cuda_version()
    return {
        "gpus": gpus(),
        "driver_cuda": None if cuda is None else f"{cuda[0]}.{cuda[1]}",
        "onnxruntime": ort.__version__,
        "onnxruntime_cuda": getattr(ort, "cuda_version", None) or "unknown",
        "providers": ort.get_available_providers(),
        "machine": describe_machine(),
    }


def markdown(report: dict[str, Any]) -> str:
    """gpu_check.md: what ran on which GPU, and each step's figures."""
    env, steps = report["environment"], report["steps"]
    gpu = "; ".join(f"{g['name']} ({g['memory']}, driver {g['driver']})" for g in env["gpus"])
    lines = [
        "# make gpu-check",
        "",
        f"- GPU: {gpu}; driver runs CUDA {env['driver_cuda']}",
        f"- onnxruntime {env['onnxruntime']} (built for CUDA {env['onnxruntime_cuda']}); {env['machine']['summary']}",
        f"- model: {report['model']}; sentences: {report['sentences']}",
        f"- started {report['started']}, took {report['seconds']:.0f} s",
        "",
    ]
    for name, step in steps.items():
        lines += [f"## {name}", "", f"{'ok' if step.get('ok') else 'FAILED'} in {step.get('seconds', 0):.0f} s", ""]
        if "error" in step:
            lines += [f"error: {step['error']}", ""]
        if name == "CUDA tests":
            counts = ", ".join(f"{k} {step[k]}" for k in ("tests", "failures", "errors", "skipped") if k in step)
            lines += [f"`{step['command']}`: {counts} (log: tests.txt)", ""]
        elif name == "engine benchmark" and "rows" in step:
            rows = [engine_bench.Measurement(**r) for r in step["rows"]]
            lines += [f"`{step['command']}`", "", engine_bench.markdown_table(rows), ""]
        elif name == "load test" and "levels" in step:
            table = load_table([LevelResult(**level) for level in step["levels"]])
            lines += [f"Server settings: {step['server_settings']}", "", table, ""]
    return "\n".join(lines)


def timed(step: Any, *args: Any) -> dict[str, Any]:
    """A step's result with its seconds; an exception becomes the step's error."""
    started = time.perf_counter()
    try:
        result = step(*args)
        result.setdefault("ok", True)
    except (Exception, SystemExit) as exc:  # recorded in the report; the other steps still run
        result = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    return result | {"seconds": time.perf_counter() - started}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.gpu_check", description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=Path("results/gpu-check"))
    parser.add_argument("--checkpoint", type=Path, help="benchmark these weights (default: random, bundled shape)")
    parser.add_argument("--sentences", type=int, default=64, help="sentences per benchmark measurement")
    parser.add_argument("--requests", type=int, default=100, help="requests per load level")
    args = parser.parse_args(argv)
    reason = problem() or cuda_problem()
    if reason is not None:
        print(f"error: {reason}", file=sys.stderr)
        return 2
    args.output.mkdir(parents=True, exist_ok=True)
    started, clock = time.strftime("%Y-%m-%d %H:%M:%S %Z"), time.perf_counter()
    steps = {"CUDA tests": timed(run_cuda_tests, args.output)}
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as directory:  # the benchmark model: not a result
        scratch = Path(directory)
        checkpoint = args.checkpoint or random_checkpoint(scratch / "random.pt")
        model_dir = export_benchmark_model(checkpoint, scratch / "models")
        text_file, sentences = sentence_file(model_dir, args.sentences, scratch / "sentences.en")
        steps["engine benchmark"] = timed(run_engine_bench, model_dir, text_file, args.sentences, args.output)
        steps["load test"] = timed(run_load_test, scratch / "models", text_file, args.requests, args.output)
    model = str(args.checkpoint) if args.checkpoint else "random weights of the bundled en-fr shape (speeds only)"
    report = {"started": started, "seconds": time.perf_counter() - clock, "model": model, "sentences": sentences}
    report |= {"environment": environment(), "steps": steps}
    (args.output / "gpu_check.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.output / "gpu_check.md").write_text(markdown(report))
    print((args.output / "gpu_check.md").read_text())
    failed = [name for name, step in steps.items() if not step["ok"]]
    if failed:
        print(f"error: {', '.join(failed)} failed (see {args.output / 'gpu_check.md'})", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
