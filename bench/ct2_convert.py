"""Convert one of our checkpoints to CTranslate2's Transformer spec, so the benchmark can compare engines
on exactly the same weights. Benchmark-only: CTranslate2 is never a dependency of the service."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import sentencepiece as spm
import torch
from ctranslate2.converters.converter import Converter
from ctranslate2.specs import common_spec, transformer_spec
from torch import nn

from model.checkpoint import load_checkpoint, model_from_checkpoint
from model.model import MultiHeadAttention, Transformer
from model.tokenizer import load_tokenizer


def _linear(spec: common_spec.LinearSpec, weight: torch.Tensor, bias: torch.Tensor | None = None) -> None:
    spec.weight = weight.detach().numpy()
    if bias is not None:
        spec.bias = bias.detach().numpy()


def _layer_norm(spec: common_spec.LayerNormSpec, norm: nn.LayerNorm) -> None:
    spec.gamma, spec.beta = norm.weight.detach().numpy(), norm.bias.detach().numpy()


def _attention(spec, attention: MultiHeadAttention, norm: nn.LayerNorm, self_attention: bool) -> None:
    """CTranslate2 fuses q/k/v (self-attention) or k/v (cross-attention) into one projection."""
    q, k, v = attention.q_proj, attention.k_proj, attention.v_proj
    if self_attention:
        _linear(spec.linear[0], torch.cat([q.weight, k.weight, v.weight]), torch.cat([q.bias, k.bias, v.bias]))
    else:
        _linear(spec.linear[0], q.weight, q.bias)
        _linear(spec.linear[1], torch.cat([k.weight, v.weight]), torch.cat([k.bias, v.bias]))
    _linear(spec.linear[-1], attention.out_proj.weight, attention.out_proj.bias)
    _layer_norm(spec.layer_norm, norm)


def _embeddings(spec, embedding: nn.Embedding, positions: np.ndarray) -> None:
    table = spec.embeddings[0] if isinstance(spec.embeddings, list) else spec.embeddings  # encoder: one per source
    table.weight = embedding.weight.detach().numpy()
    spec.scale_embeddings = True  # times sqrt(d_model), as in our TokenEmbedding
    spec.position_encodings.encodings = positions


class CheckpointConverter(Converter):
    """A CTranslate2 converter for a Transformer whose vocabulary is the list of subword strings."""

    def __init__(self, model: Transformer, vocabulary: list[str]):
        self.model, self.vocabulary = model, vocabulary

    def _load(self) -> transformer_spec.TransformerSpec:
        m, cfg = self.model, self.model.cfg
        spec = transformer_spec.TransformerSpec.from_config(
            (cfg.n_encoder_layers, cfg.n_decoder_layers), cfg.n_heads, pre_norm=True
        )
        positions = m.positional_encoding.table.numpy()
        _embeddings(spec.encoder, m.src_embedding.lookup, positions)
        for layer_spec, layer in zip(spec.encoder.layer, m.encoder.layers, strict=True):
            _attention(layer_spec.self_attention, layer.self_attn, layer.norm1, self_attention=True)
            _layer_norm(layer_spec.ffn.layer_norm, layer.norm2)
            _linear(layer_spec.ffn.linear_0, layer.feed_forward.up.weight, layer.feed_forward.up.bias)
            _linear(layer_spec.ffn.linear_1, layer.feed_forward.down.weight, layer.feed_forward.down.bias)
        _layer_norm(spec.encoder.layer_norm, m.encoder.norm)
        _embeddings(spec.decoder, m.tgt_embedding.lookup, positions)
        for layer_spec, layer in zip(spec.decoder.layer, m.decoder.layers, strict=True):
            _attention(layer_spec.self_attention, layer.self_attn, layer.norm1, self_attention=True)
            _attention(layer_spec.attention, layer.cross_attn, layer.norm2, self_attention=False)
            _layer_norm(layer_spec.ffn.layer_norm, layer.norm3)
            _linear(layer_spec.ffn.linear_0, layer.feed_forward.up.weight, layer.feed_forward.up.bias)
            _linear(layer_spec.ffn.linear_1, layer.feed_forward.down.weight, layer.feed_forward.down.bias)
        _layer_norm(spec.decoder.layer_norm, m.decoder.norm)
        _linear(spec.decoder.projection, m.generator.weight)
        spec.register_source_vocabulary(self.vocabulary)
        spec.register_target_vocabulary(self.vocabulary)
        return spec


def convert_to_ctranslate2(model: Transformer, vocabulary: list[str], output_dir: Path) -> Path:
    """Write the CTranslate2 model directory (float32 weights; compute type is chosen at load)."""
    CheckpointConverter(model, vocabulary).convert(str(output_dir), force=True)
    return output_dir


def convert_checkpoint(checkpoint: Path, output_dir: Path) -> tuple[Path, spm.SentencePieceProcessor]:
    """A checkpoint converted for CTranslate2, and its tokenizer."""
    state = load_checkpoint(checkpoint)
    tokenizer = load_tokenizer(state["tokenizer_model"])
    vocabulary = [tokenizer.id_to_piece(i) for i in range(tokenizer.get_piece_size())]
    return convert_to_ctranslate2(model_from_checkpoint(state), vocabulary, output_dir), tokenizer
