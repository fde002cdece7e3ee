"""Checkpoints: everything needed to rebuild a trained model (and to resume its training) in one file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from model.model import ModelConfig, Transformer

FORMAT_VERSION = 1


class CheckpointError(Exception):
    """A checkpoint is missing, unreadable or not one of ours."""


def save_checkpoint(path: Path, model: Transformer, tokenizer_model: bytes, **extra: Any) -> None:
    """Write atomically: a crash mid-write never leaves a truncated file under the final name.

    `extra` holds training state (optimizer, scheduler, step, rng, config, metrics, languages).
    """
    state = {
        "format_version": FORMAT_VERSION,
        "model_config": model.cfg.to_dict(),
        "model": model.state_dict(),
        "tokenizer_model": tokenizer_model,
        **extra,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(state, tmp)
    tmp.replace(path)


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Read a checkpoint written by `save_checkpoint`, with a clear error if it is not one."""
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # torch raises many types for a corrupt file
        raise CheckpointError(f"checkpoint {path} could not be read: {exc}") from exc
    missing = {"format_version", "model_config", "model", "tokenizer_model"} - set(state)
    if not isinstance(state, dict) or missing:
        raise CheckpointError(f"{path} is not a translation checkpoint (missing {sorted(missing)})")
    if state["format_version"] != FORMAT_VERSION:
        raise CheckpointError(f"{path} has format {state['format_version']}; this code reads {FORMAT_VERSION}")
    return state


def model_from_checkpoint(state: dict[str, Any]) -> Transformer:
    """Rebuild the Transformer of a loaded checkpoint, in eval mode."""
    model = Transformer(ModelConfig(**state["model_config"]))
    model.load_state_dict(state["model"])
    return model.eval()
