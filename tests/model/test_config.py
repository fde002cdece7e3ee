"""Training configs: YAML plus overrides, and errors that name the offending key."""

from __future__ import annotations

from pathlib import Path

import pytest

from model.config import PROJECT_ROOT, ConfigError, build_config, load_config

CONFIGS = PROJECT_ROOT / "model" / "configs"


SHIPPED = [*(f"multi30k_en_{pair}{v}.yaml" for pair in ("fr", "de") for v in ("", "_v2")), "tiny.yaml"]


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_configs_load(name: str) -> None:
    cfg = load_config(CONFIGS / name)
    assert cfg.data.corpus_dir == (PROJECT_ROOT.parent / "shared" / "data" / "multi30k").resolve()
    assert cfg.run.output_dir.is_relative_to(PROJECT_ROOT)


def test_overrides_are_typed_and_reach_the_model_config() -> None:
    cfg = load_config(CONFIGS / "tiny.yaml", ["optim.lr=0.01", "model.d_model=128", "optim.betas=[0.8, 0.9]"])
    assert cfg.optim.lr == 0.01 and cfg.optim.betas == (0.8, 0.9)
    assert cfg.model.to_model_config(vocab_size=100, pad_id=0).d_model == 128


def test_absolute_paths_are_kept(tmp_path: Path) -> None:
    cfg = build_config({}, [f"data.corpus_dir={tmp_path}", f"run.output_dir={tmp_path / 'run'}"])
    assert cfg.data.corpus_dir == tmp_path and cfg.run.output_dir == tmp_path / "run"


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("optim.lrr=0.1", r"optim\.lrr: unknown key"),
        ("training.steps=5", r"training: unknown key"),
        ("optim.lr=-1", r"optim\.lr: Input should be greater than 0"),
        ("model.dropout=1.5", r"model\.dropout: Input should be less than 1"),
        ("run.device=tpu", r"run\.device: Input should be 'auto', 'cpu' or 'cuda'"),
        ("model.d_model=66", r"model\.d_model \(66\) must be divisible by model\.n_heads \(4\)"),
        ("optim.betas=[0.9, 1.5]", r"optim\.betas: .*each beta must be in \[0, 1\)"),
        ("optim.max_steps=zero", r"optim\.max_steps: Input should be a valid integer"),
        ("lr", r"not of the form section\.key=value"),
    ],
)
def test_bad_overrides_name_the_key(override: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(CONFIGS / "tiny.yaml", [override])


def test_unknown_key_in_the_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("model:\n  d_modle: 64\n")
    with pytest.raises(ConfigError, match=r"model\.d_modle: unknown key"):
        load_config(path)


def test_unreadable_config(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config"):
        load_config(tmp_path / "missing.yaml")


@pytest.mark.parametrize("pair", ["fr", "de"])
def test_v2_recipes_turn_the_recipe_options_on(pair: str) -> None:
    v1, v2 = load_config(CONFIGS / f"multi30k_en_{pair}.yaml"), load_config(CONFIGS / f"multi30k_en_{pair}_v2.yaml")
    assert v2.data.bpe_dropout > 0 and v2.data.upper_case_fraction > 0 and v2.data.title_case_fraction > 0
    assert v2.optim.max_steps > v1.optim.max_steps and v2.run.average_last > 1
    assert v2.model == v1.model.model_copy(update={"dropout": v2.model.dropout})  # same shape: same serving speed
