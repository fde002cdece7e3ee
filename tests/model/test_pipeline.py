"""The offline pipeline on a tiny synthetic corpus: every stage once, then nothing left to do, then a bundled run."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from model.__main__ import main
from model.card import CARD_FILE, render_card
from model.checkpoint import FORMAT_VERSION
from model.config import PROJECT_ROOT, load_config
from model.pipeline import (
    DECODINGS,
    EVAL_VARIANTS,
    STAGES,
    PipelineError,
    choose_checkpoint,
    evaluated,
    reproduce_command,
    run_pipeline,
)
from service.decoding.engine import Engine
from service.decoding.manifest import read_manifest
from service.types import DecodeOptions
from tests.model.cli import cli_error
from tests.model.corpora import reversal_corpus

TINY = PROJECT_ROOT / "model" / "configs" / "tiny.yaml"
SPLITS = {"train": 300, "val": 20, "test_2016_flickr": 30, "test_2017_flickr": 30}
TEST_SPLITS = ["test_2016_flickr", "test_2017_flickr"]  # the config's default data.test_splits
STAGE_LINE = re.compile(r"^\[\d/\d\] (\w+): (done|skipped): (.*)$", re.MULTILINE)


@dataclass
class FirstRun:
    settings: list[str]
    run_dir: Path
    output: Path
    statuses: dict[str, str]


@pytest.fixture(scope="module")
def first_run(tmp_path_factory: pytest.TempPathFactory) -> FirstRun:
    """The whole pipeline once, from nothing: tokenizer, 12 training steps, export, evaluation, card."""
    root = tmp_path_factory.mktemp("pipeline")
    corpus = reversal_corpus(root / "corpus", SPLITS)
    run_dir, output = root / "run", root / "models" / "src-tgt"
    settings = [
        f"data.corpus_dir={corpus}",
        f"run.output_dir={run_dir}",
        "data.source_language=src",
        "data.target_language=tgt",
        "data.vocab_size=45",
        "optim.max_tokens=300",
        "optim.max_steps=12",
        "run.val_every=4",
        "run.average_last=2",
    ]
    statuses = run_pipeline(TINY, output, settings, threads=1)
    return FirstRun(settings, run_dir, output, statuses)


def printed_stages(text: str) -> dict[str, tuple[str, str]]:
    """stage -> (status, detail) from the pipeline's progress lines."""
    return {stage: (status, detail) for stage, status, detail in STAGE_LINE.findall(text)}


@pytest.mark.slow
def test_pipeline_makes_a_complete_model_directory(first_run: FirstRun) -> None:
    assert first_run.statuses == dict.fromkeys(STAGES, "done")
    manifest = read_manifest(first_run.output)
    results = manifest.scores["test"]["results"]
    assert {(s, v, d.name) for s in TEST_SPLITS for v in EVAL_VARIANTS for d in DECODINGS} == {
        (s, v, d) for s in results for v in results[s] for d in results[s][v]
    }
    assert "tok:13a" in manifest.scores["test"]["signatures"]["bleu"]
    record = manifest.training
    candidates = record["pipeline"]["candidates"]
    assert set(candidates) == {"best.pt", "averaged.pt"}
    expected = "averaged.pt" if candidates["averaged.pt"] > candidates["best.pt"] else "best.pt"
    assert record["checkpoint"] == expected and record["train_seconds"] > 0 and record["parameters"] > 0
    assert f"optim.max_steps={record['step']}" in record["pipeline"]["command"]  # the exported checkpoint's step
    card = (first_run.output / CARD_FILE).read_text()
    assert card == render_card(manifest)
    assert f"{results['test_2017_flickr']['fp32']['beam4']['bleu']:.2f}" in card
    engine = Engine.load(first_run.output, intra_op_threads=1)
    translation = engine.translate(["a b c"], DecodeOptions())[0]  # 12 steps: what it says is not the point
    assert engine.variant == "int8" and translation.source_tokens and "<s>" not in translation.best.tokens
    assert set(manifest.variants) == {"int8"}, "only the served variant is shipped"
    assert not list(first_run.output.glob("*coder.onnx")), "the fp32 graphs are removed"


@pytest.mark.slow
def test_rerun_skips_every_stage(first_run: FirstRun, capsys: pytest.CaptureFixture[str]) -> None:
    version = read_manifest(first_run.output).version
    capsys.readouterr()
    main(
        [
            "pipeline",
            "--config",
            str(TINY),
            "--output",
            str(first_run.output),
            "--threads",
            "1",
            "--set",
            *first_run.settings,
        ]
    )
    printed = capsys.readouterr().out
    assert {stage: status for stage, (status, _) in printed_stages(printed).items()} == dict.fromkeys(STAGES, "skipped")
    assert (
        "pipeline: tokenizer skipped, train skipped, export skipped, evaluate skipped, ship skipped, card skipped"
        in printed
    )
    assert read_manifest(first_run.output).version == version


@pytest.mark.slow
def test_bundled_run_skips_training_and_continues_from_export(
    first_run: FirstRun, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "bundled"
    capsys.readouterr()
    args = ["--config", str(TINY), "--output", str(output), "--run-dir", str(first_run.run_dir)]
    main(["pipeline", *args, "--stop-after", "export"])
    stages = printed_stages(capsys.readouterr().out)
    assert {stage: status for stage, (status, _) in stages.items()} == {
        "tokenizer": "skipped",
        "train": "skipped",
        "export": "done",
    }
    assert "bundled run" in stages["train"][1] and "at step 12 of 12 (finished)" in stages["train"][1]
    bundled, first = read_manifest(output).training, read_manifest(first_run.output).training
    assert bundled["checkpoint_sha256"] == first["checkpoint_sha256"]
    # the run's own settings, not the plain config file's, make the command to reproduce it
    assert bundled["pipeline"]["command"] == first["pipeline"]["command"].replace(str(first_run.output), str(output))


@pytest.mark.slow
def test_missing_scores_are_evaluated_again(first_run: FirstRun) -> None:
    test = read_manifest(first_run.output).scores["test"]
    assert evaluated(test, TEST_SPLITS)
    assert not evaluated(test, [*TEST_SPLITS, "test_2018_flickr"])
    del test["results"]["test_2017_flickr"]["fp32"]["beam4"]
    assert not evaluated(test, TEST_SPLITS)
    assert not evaluated({**test, "decoding": {"greedy": {"beam_size": 1}}}, TEST_SPLITS)


def write_fake_checkpoint(path: Path, val_bleu: float) -> None:
    """Just enough of a checkpoint for choosing between checkpoints: its validation BLEU."""
    state = {"format_version": FORMAT_VERSION, "model_config": {}, "model": {}, "tokenizer_model": b""}
    torch.save({**state, "metrics": {"val_bleu": val_bleu}}, path)


@pytest.mark.parametrize(
    ("best", "averaged", "chosen"), [(30.0, 31.0, "averaged.pt"), (30.0, 30.0, "best.pt"), (30.0, 29.0, "best.pt")]
)
def test_averaged_checkpoint_only_when_it_validates_better(
    tmp_path: Path, best: float, averaged: float, chosen: str
) -> None:
    write_fake_checkpoint(tmp_path / "best.pt", best)
    write_fake_checkpoint(tmp_path / "averaged.pt", averaged)
    assert choose_checkpoint(tmp_path) == (tmp_path / chosen, {"best.pt": best, "averaged.pt": averaged})


def test_a_run_without_best_checkpoint_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_fake_checkpoint(tmp_path / "averaged.pt", 30.0)
    with pytest.raises(PipelineError, match="no best.pt"):
        choose_checkpoint(tmp_path)
    argv = ["pipeline", "--config", str(TINY), "--output", str(tmp_path / "out"), "--run-dir", "/nonexistent/run"]
    assert cli_error(capsys, argv) == "error: run directory /nonexistent/run does not exist"


def test_reproduce_command_sets_what_the_run_changed(tmp_path: Path) -> None:
    overrides = ["optim.eps=1.0e-08", "optim.betas=[0.9, 0.99]", "model.share_embeddings=false", "data.vocab_size=64"]
    trained = load_config(TINY, [*overrides, "optim.max_steps=900", f"run.output_dir={tmp_path}"]).to_dict()
    command = reproduce_command(TINY, trained, PROJECT_ROOT / "models" / "x-y", step=700)  # stopped at step 700
    prefix = "python -m model pipeline --config model/configs/tiny.yaml --output models/x-y --set "
    assert command.startswith(prefix)
    settings = [s.strip("'") for s in re.findall(r"'[^']*'|\S+", command.removeprefix(prefix))]
    expected = ["model.share_embeddings=false", "data.vocab_size=64", *overrides[:2], "optim.max_steps=700"]
    assert sorted(settings) == sorted(expected)
    rebuilt = load_config(TINY, [*settings, f"run.output_dir={tmp_path}"]).to_dict()
    assert rebuilt == trained | {"optim": trained["optim"] | {"max_steps": 700}}


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
@pytest.mark.parametrize(
    ("variables", "arguments"),
    [
        ([], "--config model/configs/multi30k_en_fr.yaml --models-root models --output models/en-fr"),
        (["PAIR=en-de"], "--config model/configs/multi30k_en_de.yaml --models-root models --output models/en-de"),
        (["CONFIG=my.yaml"], "--config my.yaml --models-root models"),  # the model directory named by its pair
        (
            ["CONFIG=my.yaml", "PAIR=en-xx", "RUN_DIR=/r"],
            "--config my.yaml --models-root models --output models/en-xx --run-dir /r",
        ),
    ],
)
def test_make_pipeline_takes_a_pair_or_a_config(variables: list[str], arguments: str) -> None:
    env = {
        name: value for name, value in os.environ.items() if name not in {"PAIR", "CONFIG", "RUN_DIR", "MODELS_ROOT"}
    }
    printed = subprocess.run(
        ["make", "--dry-run", "--always-make", "--no-print-directory", "pipeline", "PY=python", *variables],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    commands = " ".join(printed.replace("\\\n", " ").split()).split("python -m model pipeline ")
    assert commands[-1].strip() == arguments
