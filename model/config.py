"""Training configuration: a YAML file plus `--set section.key=value` overrides, checked by pydantic.

Relative paths are relative to the project root, so `../shared/data/multi30k` (the default corpus)
works from any working directory.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from model.model import ModelConfig

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CORPUS_DIR = Path("../shared/data/multi30k")


class ConfigError(Exception):
    """A configuration file or override is unreadable, has an unknown key or a value out of range."""


class Section(BaseModel):
    """A config section: unknown keys are errors, values are checked on assignment too."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ModelSettings(Section):
    """Transformer hyperparameters (the vocabulary size comes from the tokenizer)."""

    d_model: int = Field(256, ge=8, le=4096)
    n_heads: int = Field(4, ge=1, le=64)
    d_ff: int = Field(1024, ge=8, le=16384)
    n_encoder_layers: int = Field(3, ge=1, le=24)
    n_decoder_layers: int = Field(3, ge=1, le=24)
    dropout: float = Field(0.1, ge=0.0, lt=1.0)
    attention_dropout: float = Field(0.0, ge=0.0, lt=1.0)
    max_positions: int = Field(512, ge=16, le=8192)
    share_embeddings: bool = True
    tie_output: bool = True

    @model_validator(mode="after")
    def _heads_divide_width(self) -> ModelSettings:
        if self.d_model % self.n_heads:
            raise ValueError(f"model.d_model ({self.d_model}) must be divisible by model.n_heads ({self.n_heads})")
        return self

    def to_model_config(self, vocab_size: int, pad_id: int) -> ModelConfig:
        return ModelConfig(vocab_size=vocab_size, pad_id=pad_id, **self.model_dump())


class DataSettings(Section):
    """Where the parallel corpus is, which pair and splits to use, and how sentences are filtered.

    A split is `{split}.{source_language}` + `{split}.{target_language}` aligned line by line, or `{split}.tsv`
    of source<TAB>target lines, in `corpus_dir` (see model/data.py)."""

    corpus_dir: Path = DEFAULT_CORPUS_DIR
    source_language: str = Field("en", min_length=1)
    target_language: str = Field("fr", min_length=1)
    train_split: str = Field("train", min_length=1)
    val_split: str = Field("val", min_length=1)  # validation BLEU: checkpoint choice and averaging
    test_splits: list[str] = Field(["test_2016_flickr", "test_2017_flickr"], min_length=1)  # scored by the pipeline
    vocab_size: int = Field(8000, ge=16, le=256000)
    max_sentence_tokens: int = Field(100, ge=1, le=8192)  # longer pairs (in subwords, either side) are dropped
    max_length_ratio: float = Field(3.0, ge=1.0)  # pairs whose subword lengths differ more are dropped
    # Recipe options, all off by default (model/augment.py): training pairs added again in ALL CAPS and in
    # Title Case (both sides; the tokenizer is trained on them too), and BPE-dropout of training batches.
    upper_case_fraction: float = Field(0.0, ge=0.0, le=1.0)
    title_case_fraction: float = Field(0.0, ge=0.0, le=1.0)
    bpe_dropout: float = Field(0.0, ge=0.0, lt=1.0)  # probability of skipping each BPE merge, per step

    @field_validator("corpus_dir")
    @classmethod
    def _from_project_root(cls, path: Path) -> Path:
        return path if path.is_absolute() else (PROJECT_ROOT / path).resolve()


class OptimSettings(Section):
    """Adam with warm-up then inverse-square-root decay, label smoothing, gradient clipping, stopping rule."""

    max_tokens: int = Field(5000, ge=16)  # per batch and side, padding included
    lr: float = Field(1e-3, gt=0.0, le=1.0)  # peak learning rate, reached at the end of warm-up
    warmup_steps: int = Field(1000, ge=1)
    betas: tuple[float, float] = (0.9, 0.98)
    eps: float = Field(1e-9, gt=0.0)
    weight_decay: float = Field(0.0, ge=0.0)
    label_smoothing: float = Field(0.1, ge=0.0, lt=1.0)
    clip_norm: float = Field(1.0, ge=0.0)  # 0 disables clipping
    max_steps: int = Field(10000, ge=0)  # 0: no step limit
    max_epochs: int = Field(0, ge=0)  # 0: no epoch limit

    @field_validator("betas")
    @classmethod
    def _betas_in_range(cls, betas: tuple[float, float]) -> tuple[float, float]:
        if not all(0.0 <= b < 1.0 for b in betas):
            raise ValueError(f"each beta must be in [0, 1), got {list(betas)}")
        return betas

    @model_validator(mode="after")
    def _some_limit(self) -> OptimSettings:
        if not (self.max_steps or self.max_epochs):
            raise ValueError("set optim.max_steps or optim.max_epochs (both are 0)")
        return self


class RunSettings(Section):
    """Where and on what the run happens: output, device, threads, seed, validation and logging cadence."""

    output_dir: Path = Path("runs/default")
    seed: int = 1
    device: Literal["auto", "cpu", "cuda"] = "auto"
    bf16: bool = True  # bf16 autocast, on CUDA only
    num_threads: int = Field(0, ge=0, le=1024)  # torch intra-op threads; 0 leaves torch's default
    val_every: int = Field(500, ge=1)  # steps between validations (and checkpoints)
    log_every: int = Field(50, ge=1)  # steps between training-loss entries in metrics.jsonl
    val_batch_sentences: int = Field(128, ge=1)  # sentences per greedy-decoding batch for validation BLEU
    average_last: int = Field(0, ge=0)  # >1: average the last N validation checkpoints into averaged.pt
    init_from: Path | None = None  # fine-tuning: start from this checkpoint's weights and tokenizer

    @field_validator("output_dir", "init_from")
    @classmethod
    def _from_project_root(cls, path: Path | None) -> Path | None:
        return path if path is None or path.is_absolute() else (PROJECT_ROOT / path).resolve()


class TrainConfig(Section):
    """The whole training configuration."""

    model: ModelSettings = ModelSettings()
    data: DataSettings = DataSettings()
    optim: OptimSettings = OptimSettings()
    run: RunSettings = RunSettings()

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def parse_override(text: str) -> tuple[list[str], Any]:
    """'optim.lr=0.001' -> (['optim', 'lr'], 0.001); the value is read as YAML (numbers, booleans, lists)."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"override {text!r} is not of the form section.key=value")
    return key.strip().split("."), yaml.safe_load(value) if value.strip() else ""


def apply_override(tree: dict[str, Any], path: list[str], value: Any) -> None:
    """Set `value` at `path` in the nested dict `tree`, creating sections as needed."""
    for name in path[:-1]:
        node = tree.setdefault(name, {})
        if not isinstance(node, dict):
            raise ConfigError(f"cannot set {'.'.join(path)}: {name} is not a section")
        tree = node
    tree[path[-1]] = value


def describe_errors(error: ValidationError) -> str:
    """One line per problem, each naming the dotted key."""
    lines = []
    for problem in error.errors():
        key = ".".join(str(part) for part in problem["loc"]) or "config"
        if problem["type"] == "extra_forbidden":
            lines.append(f"{key}: unknown key")
        else:
            lines.append(f"{key}: {problem['msg']} (got {problem.get('input')!r})")
    return "\n".join(lines)


def build_config(tree: dict[str, Any], overrides: list[str] = ()) -> TrainConfig:
    """Validate a config dict after applying `section.key=value` overrides."""
    tree = {name: dict(section) if isinstance(section, dict) else section for name, section in tree.items()}
    for text in overrides:
        apply_override(tree, *parse_override(text))
    try:
        return TrainConfig.model_validate(tree)
    except ValidationError as exc:
        raise ConfigError(f"invalid training config:\n{describe_errors(exc)}") from None


def load_config(path: Path, overrides: list[str] = ()) -> TrainConfig:
    """Read a YAML config file and apply overrides."""
    try:
        tree = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read config {path}: {exc}") from None
    if not isinstance(tree, dict):
        raise ConfigError(f"config {path} must be a mapping of sections, not {type(tree).__name__}")
    return build_config(tree, overrides)
