"""A language pair of one's own: a made-up en-xx TSV corpus through the whole pipeline to the real server, and the
corpus problems the pipeline refuses with one `error:` line before it trains anything."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from model.__main__ import main
from model.config import PROJECT_ROOT, load_config
from service.decoding.manifest import read_manifest
from tests.model.cli import cli_error
from tests.model.corpora import word_mapping_tsv, write_lines
from tests.support.service_process import ServiceProcess

TINY = PROJECT_ROOT / "model" / "configs" / "tiny.yaml"
TEMPLATE = PROJECT_ROOT / "model" / "configs" / "own_pair_template.yaml"
SPLITS = {"train": 300, "dev": 20, "test": 30}  # split names that are not Multi30k's


def own_pair_settings(corpus: Path, run_dir: Path, *extra: str) -> list[str]:
    """Overrides of the tiny config for the en-xx corpus: a few seconds of training."""
    return [
        f"data.corpus_dir={corpus}",
        f"run.output_dir={run_dir}",
        "data.source_language=en",
        "data.target_language=xx",
        "data.val_split=dev",
        "data.test_splits=[test]",
        "data.vocab_size=60",
        "optim.max_tokens=300",
        "optim.max_steps=8",
        "run.val_every=4",
        *extra,
    ]


def pipeline_argv(models_root: Path, settings: list[str]) -> list[str]:
    return ["pipeline", "--config", str(TINY), "--models-root", str(models_root), "--threads", "1", "--set", *settings]


@pytest.mark.slow
def test_a_tsv_corpus_of_a_new_pair_is_trained_bundled_and_served(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    corpus = word_mapping_tsv(tmp_path / "corpus", SPLITS)
    models_root = tmp_path / "models"
    recipe = ["data.bpe_dropout=0.1", "data.upper_case_fraction=0.05", "data.title_case_fraction=0.05"]
    main(pipeline_argv(models_root, own_pair_settings(corpus, tmp_path / "run", *recipe)))
    assert "pipeline: tokenizer done, train done, export done, evaluate done, ship done, card done" in (
        capsys.readouterr().out
    )
    model_dir = models_root / "en-xx"  # named after the config's pair
    manifest = read_manifest(model_dir)
    assert (manifest.name, manifest.source_language, manifest.target_language) == ("en-xx", "en", "xx")
    assert list(manifest.scores["test"]["results"]) == ["test"]
    card = (model_dir / "MODEL_CARD.md").read_text()
    assert "`test`" in card and "only what the training corpus covers" in card and "image captions" not in card
    assert "all capitals and Title Case were trained on in 5% and 5% extra copies" in card

    with ServiceProcess(models_root, tmp_path / "server.log") as service:
        service.wait_serving()
        with service.client() as client:
            [info] = client.list_models()
            response = client.translate([corpus.joinpath("test.tsv").read_text().split("\t")[0]], beam_size=2)
    assert (info.name, info.source_language, info.target_language) == ("en-xx", "en", "xx")
    assert response.model == "en-xx"
    [translation] = response.translations
    assert translation.hypotheses[0].tokens, "a translation of at least one subword"


def test_the_template_config_names_every_split(tmp_path: Path) -> None:
    cfg = load_config(TEMPLATE, [f"data.corpus_dir={tmp_path}"])
    data = cfg.data
    assert (data.source_language, data.target_language) == ("en", "xx")
    assert (data.train_split, data.val_split, data.test_splits) == ("train", "dev", ["test"])


def refused(capsys: pytest.CaptureFixture[str], tmp_path: Path, corpus: Path, *extra: str) -> str:
    """The pipeline's `error:` line for this corpus; nothing was trained or bundled."""
    run_dir, models_root = tmp_path / "run", tmp_path / "models"
    error = cli_error(capsys, pipeline_argv(models_root, own_pair_settings(corpus, run_dir, *extra)))
    assert not (run_dir / "last.pt").exists() and not models_root.exists()
    return error


def test_missing_corpus_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    error = refused(capsys, tmp_path, tmp_path / "nowhere")
    assert error == f"error: corpus directory {tmp_path / 'nowhere'} does not exist"


def test_corpus_given_as_a_tsv_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    corpus = word_mapping_tsv(tmp_path / "corpus", SPLITS)
    error = refused(capsys, tmp_path, corpus / "train.tsv")
    assert "is a file; it must be the directory holding the split files ({split}.tsv" in error


def test_missing_test_split_is_found_before_training(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    corpus = word_mapping_tsv(tmp_path / "corpus", {"train": 300, "dev": 20})
    error = refused(capsys, tmp_path, corpus)
    assert f"split 'test' not found in {corpus}: test.en and test.xx (or .gz) missing, and no test.tsv" in error


def test_empty_split_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    corpus = word_mapping_tsv(tmp_path / "corpus", SPLITS)
    write_lines(corpus / "dev.tsv", [])
    assert refused(capsys, tmp_path, corpus) == "error: dev.tsv is empty"


def test_tsv_line_without_a_tab(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    corpus = word_mapping_tsv(tmp_path / "corpus", SPLITS)
    lines = corpus.joinpath("train.tsv").read_text().splitlines()
    write_lines(corpus / "train.tsv", [*lines[:6], lines[6].replace("\t", " "), *lines[7:]])
    error = refused(capsys, tmp_path, corpus)
    assert error == "error: train.tsv line 7 has 1 tab-separated fields; each line must be source<TAB>target (one tab)"


def test_aligned_files_of_unequal_length(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    corpus = word_mapping_tsv(tmp_path / "corpus", SPLITS)
    write_lines(corpus / "train.en", ["one", "two", "three"])
    write_lines(corpus / "train.xx.gz", ["un", "deux"])  # aligned files take precedence over train.tsv
    assert refused(capsys, tmp_path, corpus) == "error: train.xx.gz has 2 lines but train.en has 3"


@pytest.mark.parametrize(("vocab_size", "problem"), [(8000, "large"), (16, "small")])
def test_vocabulary_size_that_does_not_fit_the_corpus(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], vocab_size: int, problem: str
) -> None:
    corpus = word_mapping_tsv(tmp_path / "corpus", SPLITS)
    error = refused(capsys, tmp_path, corpus, f"data.vocab_size={vocab_size}")
    expected = f"error: data.vocab_size {vocab_size} is too {problem} for the 'train' split of {corpus} (300 pairs)"
    assert re.fullmatch(re.escape(expected) + r": set it to at (most|least) \d+.*", error)


def test_no_pair_left_after_length_filtering(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    corpus = word_mapping_tsv(tmp_path / "corpus", SPLITS)
    error = refused(capsys, tmp_path, corpus, "data.max_sentence_tokens=1")
    assert error.startswith("error: no pair of the 'train' split is left after filtering: 0/300 pairs kept")


def test_the_real_command_exits_2_without_a_traceback(tmp_path: Path) -> None:
    argv = pipeline_argv(tmp_path / "models", own_pair_settings(tmp_path / "nowhere", tmp_path / "run"))
    done = subprocess.run(
        [sys.executable, "-m", "model", *argv], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 2
    assert done.stderr == f"error: corpus directory {tmp_path / 'nowhere'} does not exist\n"
