"""PyTorch reference decoding: the shared greedy/beam search driven by the torch model's cached decode step."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from model.model import KeyValue, Transformer, padding_mask
from service.decoding.search import IncrementalDecoder, SearchResult, beam_search, greedy_search


class TorchIncrementalDecoder:
    """The model's decoder over one encoded batch, with its key/value cache, seen through numpy."""

    def __init__(self, model: Transformer, src: torch.Tensor, attention_layer: int = -1):
        self.model = model
        self.src_mask = padding_mask(src, model.cfg.pad_id)  # (N, 1, 1, S)
        self.memory_kv = model.decoder.memory_key_values(model.encode(src))
        self.past: list[KeyValue] | None = None
        self.attention_layer = attention_layer

    @torch.no_grad()
    def step(self, tokens: np.ndarray, position: int) -> tuple[np.ndarray, np.ndarray]:
        token = torch.from_numpy(tokens).long()[:, None].to(self.src_mask.device)  # (N, 1)
        log_probs, self.past, cross = self.model.decode_step(token, position, self.memory_kv, self.src_mask, self.past)
        attention = cross[self.attention_layer][:, :, 0].mean(dim=1)  # heads averaged: (N, S)
        return log_probs.float().cpu().numpy(), attention.float().cpu().numpy()

    def select(self, rows: np.ndarray) -> None:
        index = torch.from_numpy(np.asarray(rows)).long().to(self.src_mask.device)
        self.src_mask = self.src_mask[index]
        self.memory_kv = [(k[index], v[index]) for k, v in self.memory_kv]
        if self.past is not None:
            self.past = [(k[index], v[index]) for k, v in self.past]


@torch.no_grad()
def translate_ids(
    model: Transformer,
    sources: list[list[int]],
    bos_id: int,
    eos_id: int,
    beam_size: int = 1,
    n_best: int = 1,
    length_penalty: float = 1.0,
    max_length_a: float = 1.5,
    max_length_b: int = 10,
    return_attention: bool = False,
    decoder_factory: Callable[[Transformer, torch.Tensor], IncrementalDecoder] = TorchIncrementalDecoder,
) -> list[list[SearchResult]]:
    """Translate token-id sequences (each already ending in eos); n-best hypotheses per source, best first."""
    model.eval()
    width = max(len(s) for s in sources)
    device = next(model.parameters()).device
    src = torch.full((len(sources), width), model.cfg.pad_id, dtype=torch.long, device=device)
    for i, s in enumerate(sources):
        src[i, : len(s)] = torch.tensor(s)
    max_lengths = np.array([int(max_length_a * len(s) + max_length_b) for s in sources])
    max_lengths = np.minimum(max_lengths, model.cfg.max_positions)
    if beam_size == 1:
        decoder = decoder_factory(model, src)
        never = (model.cfg.pad_id,)
        results = greedy_search(decoder, max_lengths, bos_id, eos_id, length_penalty, return_attention, never=never)
        return [[r] for r in results]
    decoder = decoder_factory(model, src.repeat_interleave(beam_size, dim=0))
    return beam_search(
        decoder,
        max_lengths,
        bos_id,
        eos_id,
        beam_size,
        n_best,
        length_penalty,
        return_attention,
        never=(model.cfg.pad_id,),
    )
