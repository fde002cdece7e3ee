"""Recipe options: case augmentation and BPE-dropout, on their own and inside the trainer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from model.augment import SubwordSampler, case_augmented, title_case
from model.config import PROJECT_ROOT, load_config
from model.data import collate, read_parallel
from model.tokenizer import load_tokenizer, train_tokenizer
from model.train import Trainer
from tests.model.corpora import word_mapping_tsv

CONFIGS = PROJECT_ROOT / "model" / "configs"


def test_title_case_capitalizes_each_word() -> None:
    assert title_case("a man rides a bike.") == "A Man Rides A Bike."
    assert title_case("l'homme  à vélo") == "L'homme  À Vélo"


def test_case_augmentation_adds_capitalized_copies_of_both_sides() -> None:
    src = [f"source {i}" for i in range(200)]
    tgt = [f"target {i}" for i in range(200)]
    aug_src, aug_tgt = case_augmented(src, tgt, upper_fraction=0.05, title_fraction=0.03, seed=1)
    assert len(aug_src) == len(aug_tgt) == 200 + 10 + 6
    assert aug_src[:200] == src and aug_tgt[:200] == tgt
    upper, title = list(zip(aug_src, aug_tgt, strict=True))[200:210], list(zip(aug_src, aug_tgt, strict=True))[210:]
    assert all(s.isupper() and s.removeprefix("SOURCE ") == t.removeprefix("TARGET ") for s, t in upper)
    assert all(s.startswith("Source ") and s.removeprefix("Source ") == t.removeprefix("Target ") for s, t in title)
    assert (aug_src, aug_tgt) == case_augmented(src, tgt, 0.05, 0.03, seed=1)
    assert aug_src != case_augmented(src, tgt, 0.05, 0.03, seed=2)[0]
    assert case_augmented(src, tgt, 0.0, 0.0, seed=1) == (src, tgt)


@pytest.fixture(scope="module")
def en_xx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return word_mapping_tsv(tmp_path_factory.mktemp("corpus"), {"train": 300, "dev": 20})


@pytest.fixture(scope="module")
def sampler_and_pairs(en_xx: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[SubwordSampler, list]:
    src, tgt = read_parallel(en_xx, "train", "en", "xx")
    tokenizer = load_tokenizer(train_tokenizer(src + tgt, tmp_path_factory.mktemp("spm") / "spm.model", 120))
    pairs = list(zip(tokenizer.encode(src[:64]), tokenizer.encode(tgt[:64]), strict=True))
    return SubwordSampler(tokenizer, dropout=0.3, max_tokens=100, seed=1), pairs


def test_bpe_dropout_keeps_the_text_and_changes_the_cuts(sampler_and_pairs: tuple[SubwordSampler, list]) -> None:
    sampler, pairs = sampler_and_pairs
    decode = sampler.tokenizer.decode
    sampled = sampler(pairs, step=7)
    assert [(decode(s), decode(t)) for s, t in sampled] == [(decode(s), decode(t)) for s, t in pairs]
    assert sampled != pairs
    assert sum(len(s) + len(t) for s, t in sampled) > sum(len(s) + len(t) for s, t in pairs)  # fewer merges


def test_bpe_dropout_is_repeatable_per_step(sampler_and_pairs: tuple[SubwordSampler, list]) -> None:
    sampler, pairs = sampler_and_pairs
    assert sampler(pairs, step=7) == sampler(pairs, step=7)
    assert sampler(pairs, step=7) != sampler(pairs, step=8)


def test_a_sampled_side_over_the_length_limit_keeps_its_usual_cut(
    sampler_and_pairs: tuple[SubwordSampler, list],
) -> None:
    sampler, pairs = sampler_and_pairs
    longest = max(len(s) for s, _ in pairs)
    strict = SubwordSampler(sampler.tokenizer, dropout=0.9, max_tokens=longest, seed=1)
    assert all(len(s) <= longest for s, _ in strict(pairs, step=1))


def trainer(en_xx: Path, run_dir: Path, *extra: str) -> Trainer:
    settings = [
        f"data.corpus_dir={en_xx}",
        f"run.output_dir={run_dir}",
        "data.source_language=en",
        "data.target_language=xx",
        "data.val_split=dev",
        "data.vocab_size=60",
        *extra,
    ]
    return Trainer(load_config(CONFIGS / "tiny.yaml", settings))


def test_the_trainer_applies_both_options(en_xx: Path, tmp_path: Path) -> None:
    options = ("data.bpe_dropout=0.2", "data.upper_case_fraction=0.05", "data.title_case_fraction=0.05")
    on, off = trainer(en_xx, tmp_path / "on", *options), trainer(en_xx, tmp_path / "off")
    assert (on.train_split.counts.read, off.train_split.counts.read) == (300 + 15 + 15, 300)
    assert all(line.isupper() for line in on.train_split.source_lines[300:315])
    indices = np.arange(32)
    assert on.training_batch(indices).src.tolist() != collate(on.train_split.pairs, indices).src.tolist()
    assert off.sampler is None
    assert off.training_batch(indices).src.tolist() == collate(off.train_split.pairs, indices).src.tolist()


@pytest.mark.parametrize("name", ["multi30k_en_fr.yaml", "multi30k_en_de.yaml", "own_pair_template.yaml"])
def test_options_are_off_in_configs_that_do_not_set_them(name: str) -> None:
    data = load_config(CONFIGS / name).data
    assert (data.bpe_dropout, data.upper_case_fraction, data.title_case_fraction) == (0.0, 0.0, 0.0)
