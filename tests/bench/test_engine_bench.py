"""The offline engine benchmark end to end on the tiny model: every engine it compares runs (behaviour, never speed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.engine_bench import cpu_variants, main
from model.export import main as export_main
from tests.support.tiny import write_source_sentences

pytest.importorskip("ctranslate2", reason="ctranslate2 (the bench extra) is not installed")


@pytest.mark.slow
def test_tiny_run_measures_every_engine_setting(tiny_checkpoint: Path, tiny_model_dir: Path, tmp_path: Path) -> None:
    text_file = write_source_sentences(tmp_path / "sentences.txt", 5)
    output = tmp_path / "results"
    argv = ["--model-dir", str(tiny_model_dir), "--checkpoint", str(tiny_checkpoint), "--text-file", str(text_file)]
    main([*argv, "--sentences", "3", "--batch-sizes", "1", "2", "--output", str(output)])

    report = json.loads((output / "engine_bench.json").read_text())
    assert report["sentences"] == 3
    measured = {(r["engine"], r["setting"], r["search"]) for r in report["rows"]}
    ctranslate2 = [f"{t}, {n}" for t in ("int8", "float32") for n in ("1 thread", "2 threads")]
    settings = [f"{v} {i}" for v in ("fp32", "int8") for i in ("inplace", "concat")]  # not fp16: for CUDA
    expected = {("onnxruntime", v, s) for v in settings for s in ("greedy", "beam 4")}
    expected |= {("pytorch", "cache", s) for s in ("greedy", "beam 4")} | {("pytorch", "no cache", "greedy")}
    expected |= {("ctranslate2", c, s) for c in ctranslate2 for s in ("greedy", "beam 4")}
    assert measured == expected
    assert len(report["rows"]) == 2 * len(expected)  # batch 1 and 2
    assert all(r["sentences_per_s"] > 0 and r["target_tokens_per_s"] > 0 for r in report["rows"])
    table = (output / "engine_bench.md").read_text()
    assert report["machine"]["cpu"] in table and "| ctranslate2 | int8, 1 thread | greedy | 2 |" in table
    assert (output / "engine_bench.png").stat().st_size > 0


def test_variants_default_to_those_of_the_model_directory(tiny_checkpoint: Path, tmp_path: Path) -> None:
    int8_only = tmp_path / "en-fr"
    assert export_main(["--checkpoint", str(tiny_checkpoint), "--output", str(int8_only), "--variants", "int8"]) == 0
    assert cpu_variants(int8_only) == ["int8"]  # a bundled model: the benchmark must not ask for fp32

    text_file = write_source_sentences(tmp_path / "sentences.txt", 2)
    argv = ["--model-dir", str(int8_only), "--text-file", str(text_file), "--batch-sizes", "1"]
    main([*argv, "--output", str(tmp_path)])
    rows = json.loads((tmp_path / "engine_bench.json").read_text())["rows"]
    assert [(r["engine"], r["setting"], r["search"]) for r in rows] == [  # the interfaces alternate
        ("onnxruntime", "int8 inplace", "greedy"),
        ("onnxruntime", "int8 concat", "greedy"),
        ("onnxruntime", "int8 inplace", "beam 4"),
        ("onnxruntime", "int8 concat", "beam 4"),
    ]
