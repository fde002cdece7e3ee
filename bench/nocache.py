"""Decoding without a key/value cache: every step re-runs the decoder over the whole prefix.

The baseline that shows what the cache buys; benchmark-only.
"""

from __future__ import annotations

import numpy as np
import torch

from model.model import Transformer, padding_mask


class RecomputingTorchDecoder:
    """An `IncrementalDecoder` that keeps only the token prefix and recomputes all positions each step."""

    def __init__(self, model: Transformer, src: torch.Tensor):
        self.model = model
        self.src_mask = padding_mask(src, model.cfg.pad_id)
        self.memory = model.encode(src)  # (N, S, C)
        self.prefix = torch.zeros(len(src), 0, dtype=torch.long)  # (N, t)

    @torch.no_grad()
    def step(self, tokens: np.ndarray, position: int) -> tuple[np.ndarray, None]:
        self.prefix = torch.cat([self.prefix, torch.from_numpy(tokens).long()[:, None]], dim=1)
        logits, _ = self.model.decode(self.prefix, self.memory, self.src_mask)  # (N, t, V): all positions again
        return torch.log_softmax(logits[:, -1], dim=-1).numpy(), None

    def select(self, rows: np.ndarray) -> None:
        index = torch.from_numpy(np.asarray(rows)).long()
        self.src_mask, self.memory, self.prefix = self.src_mask[index], self.memory[index], self.prefix[index]
