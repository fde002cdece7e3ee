"""The encoder-decoder Transformer (Vaswani et al., 2017), built from its parts.

Layers are pre-norm (layer norm before each sublayer, residual around it, a final norm on each stack):
the same parts as the paper's post-norm layers, but it trains without a delicate warm-up.

Shapes: B batch, S source length, T target length, C d_model, H heads, D head size, V vocabulary.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

KeyValue = tuple[Tensor, Tensor]  # keys and values of one attention layer, each (B, H, length, D)


@dataclass
class ModelConfig:
    """Hyperparameters of the Transformer: everything needed to rebuild it from a checkpoint."""

    vocab_size: int
    d_model: int = 256
    n_heads: int = 4
    d_ff: int = 1024
    n_encoder_layers: int = 3
    n_decoder_layers: int = 3
    dropout: float = 0.1
    attention_dropout: float = 0.0
    max_positions: int = 512
    pad_id: int = 0
    share_embeddings: bool = True  # one embedding table for source and target (joint vocabulary)
    tie_output: bool = True  # the output projection reuses the target embedding matrix

    def __post_init__(self) -> None:
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model ({self.d_model}) must be divisible by n_heads ({self.n_heads})")

    def to_dict(self) -> dict:
        return asdict(self)


def scaled_dot_product_attention(
    q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None, scale: float, dropout: nn.Module | None = None
) -> tuple[Tensor, Tensor]:
    """softmax(q k^T / sqrt(d_k)) v; positions where `mask` is False get -inf before the softmax."""
    scores = torch.matmul(q, k.transpose(-2, -1)) * scale  # (B, H, Tq, Tk)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = F.softmax(scores, dim=-1)  # rows sum to 1, exactly 0 where masked
    attended = dropout(weights) if dropout is not None else weights
    return torch.matmul(attended, v), weights  # (B, H, Tq, D), (B, H, Tq, Tk)


def padding_mask(tokens: Tensor, pad_id: int) -> Tensor:
    """Padding mask: True on real tokens, so attention never looks at padding. (B, S) -> (B, 1, 1, S)."""
    return (tokens != pad_id)[:, None, None, :]


def causal_mask(length: int, device: torch.device | None = None) -> Tensor:
    """Look-ahead mask: position t may attend to positions <= t only. (1, 1, T, T)."""
    return torch.ones(length, length, dtype=torch.bool, device=device).tril()[None, None]


def sinusoidal_positional_encoding(max_positions: int, d_model: int) -> Tensor:
    """PE(pos, 2i) = sin(pos / 10000^(2i/d_model)), PE(pos, 2i+1) = cos(pos / 10000^(2i/d_model))."""
    position = torch.arange(max_positions, dtype=torch.float32)[:, None]  # (P, 1)
    inverse_frequency = torch.exp(torch.arange(0, d_model, 2, dtype=torch.float32) * (-math.log(10000.0) / d_model))
    table = torch.zeros(max_positions, d_model)
    table[:, 0::2] = torch.sin(position * inverse_frequency)
    table[:, 1::2] = torch.cos(position * inverse_frequency)
    return table  # (P, C)


class PositionalEncoding(nn.Module):
    """Adds the sinusoidal position signal to token embeddings, so attention can tell order."""

    def __init__(self, d_model: int, max_positions: int, dropout: float):
        super().__init__()
        self.register_buffer("table", sinusoidal_positional_encoding(max_positions, d_model), persistent=False)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor, start: Tensor | int = 0) -> Tensor:
        positions = torch.arange(x.size(1), device=x.device) + start  # (T,)
        return self.dropout(x + self.table.index_select(0, positions))  # (B, T, C)


class TokenEmbedding(nn.Module):
    """Token embeddings scaled by sqrt(d_model), as in the paper."""

    def __init__(self, vocab_size: int, d_model: int, pad_id: int):
        super().__init__()
        self.lookup = nn.Embedding(vocab_size, d_model, padding_idx=pad_id)
        self.scale = math.sqrt(d_model)
        nn.init.normal_(self.lookup.weight, mean=0.0, std=d_model**-0.5)
        with torch.no_grad():
            self.lookup.weight[pad_id].zero_()

    def forward(self, tokens: Tensor) -> Tensor:
        return self.lookup(tokens) * self.scale  # (B, T, C)


class MultiHeadAttention(nn.Module):
    """h attention heads in parallel over learned projections of queries, keys and values, then concatenated."""

    def __init__(self, d_model: int, n_heads: int, dropout: float):
        super().__init__()
        self.n_heads, self.d_head = n_heads, d_model // n_heads
        self.scale = 1.0 / math.sqrt(self.d_head)
        self.q_proj = nn.Linear(d_model, d_model)
        self.k_proj = nn.Linear(d_model, d_model)
        self.v_proj = nn.Linear(d_model, d_model)
        self.out_proj = nn.Linear(d_model, d_model)
        self.dropout = nn.Dropout(dropout)

    def split_heads(self, x: Tensor) -> Tensor:
        return x.unflatten(-1, (self.n_heads, self.d_head)).transpose(1, 2)  # (B, T, C) -> (B, H, T, D)

    def project_key_value(self, x: Tensor) -> KeyValue:
        """Keys and values of `x`: what the cache stores so they are computed once per position."""
        return self.split_heads(self.k_proj(x)), self.split_heads(self.v_proj(x))

    def forward(self, x: Tensor, key_value: KeyValue, mask: Tensor | None) -> tuple[Tensor, Tensor]:
        q = self.split_heads(self.q_proj(x))  # (B, H, T, D)
        out, weights = scaled_dot_product_attention(q, *key_value, mask, self.scale, self.dropout)
        return self.out_proj(out.transpose(1, 2).flatten(2)), weights  # (B, T, C), (B, H, T, Tk)


class FeedForward(nn.Module):
    """Position-wise feed-forward network: Linear(d_model -> d_ff), ReLU, Linear(d_ff -> d_model)."""

    def __init__(self, d_model: int, d_ff: int, dropout: float):
        super().__init__()
        self.up = nn.Linear(d_model, d_ff)
        self.down = nn.Linear(d_ff, d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        return self.down(self.dropout(F.relu(self.up(x))))


class EncoderLayer(nn.Module):
    """Self-attention over the source, then the feed-forward network; each with residual and layer norm."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.self_attn = MultiHeadAttention(cfg.d_model, cfg.n_heads, cfg.attention_dropout)
        self.feed_forward = FeedForward(cfg.d_model, cfg.d_ff, cfg.dropout)
        self.norm1, self.norm2 = nn.LayerNorm(cfg.d_model), nn.LayerNorm(cfg.d_model)
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, x: Tensor, src_mask: Tensor) -> Tensor:
        h = self.norm1(x)
        x = x + self.dropout(self.self_attn(h, self.self_attn.project_key_value(h), src_mask)[0])
        return x + self.dropout(self.feed_forward(self.norm2(x)))  # (B, S, C)


class DecoderLayer(nn.Module):
    """Masked self-attention, encoder-decoder (cross) attention, feed-forward; residual and norm around each."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.self_attn = MultiHeadAttention(cfg.d_model, cfg.n_heads, cfg.attention_dropout)
        self.cross_attn = MultiHeadAttention(cfg.d_model, cfg.n_heads, cfg.attention_dropout)
        self.feed_forward = FeedForward(cfg.d_model, cfg.d_ff, cfg.dropout)
        self.norm1, self.norm2, self.norm3 = (nn.LayerNorm(cfg.d_model) for _ in range(3))
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(
        self,
        x: Tensor,
        memory_kv: KeyValue,
        src_mask: Tensor,
        self_mask: Tensor | None,
        past_kv: KeyValue | None,
    ) -> tuple[Tensor, KeyValue, Tensor]:
        """Returns the new hidden states, this layer's self-attention keys/values so far, cross-attention weights."""
        h = self.norm1(x)
        k, v = self.self_attn.project_key_value(h)  # (B, H, T, D)
        if past_kv is not None:  # incremental decoding: the cache grows by the new positions
            k, v = torch.cat([past_kv[0], k], dim=2), torch.cat([past_kv[1], v], dim=2)
        x = x + self.dropout(self.self_attn(h, (k, v), self_mask)[0])
        attended, cross_weights = self.cross_attn(self.norm2(x), memory_kv, src_mask)
        x = x + self.dropout(attended)
        x = x + self.dropout(self.feed_forward(self.norm3(x)))
        return x, (k, v), cross_weights  # (B, T, C), KeyValue, (B, H, T, S)


class Encoder(nn.Module):
    """A stack of encoder layers over the embedded source."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.layers = nn.ModuleList(EncoderLayer(cfg) for _ in range(cfg.n_encoder_layers))
        self.norm = nn.LayerNorm(cfg.d_model)

    def forward(self, x: Tensor, src_mask: Tensor) -> Tensor:
        for layer in self.layers:
            x = layer(x, src_mask)
        return self.norm(x)  # (B, S, C)


@dataclass
class DecoderOutput:
    """Hidden states of the decoder stack, the self-attention cache, and each layer's cross-attention."""

    hidden: Tensor  # (B, T, C)
    self_kv: list[KeyValue]  # per layer, (B, H, past + T, D)
    cross_attention: list[Tensor]  # per layer, (B, H, T, S)


class Decoder(nn.Module):
    """A stack of decoder layers: each target position sees earlier targets and the whole source."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.layers = nn.ModuleList(DecoderLayer(cfg) for _ in range(cfg.n_decoder_layers))
        self.norm = nn.LayerNorm(cfg.d_model)

    def memory_key_values(self, memory: Tensor) -> list[KeyValue]:
        """Cross-attention keys/values of every layer, computed once from the encoder output."""
        return [layer.cross_attn.project_key_value(memory) for layer in self.layers]

    def forward(
        self,
        x: Tensor,
        memory_kv: list[KeyValue],
        src_mask: Tensor,
        self_mask: Tensor | None,
        past_kv: list[KeyValue] | None = None,
    ) -> DecoderOutput:
        present, cross = [], []
        for i, layer in enumerate(self.layers):
            x, kv, weights = layer(x, memory_kv[i], src_mask, self_mask, past_kv[i] if past_kv else None)
            present.append(kv)
            cross.append(weights)
        return DecoderOutput(self.norm(x), present, cross)


class Transformer(nn.Module):
    """Encoder-decoder Transformer: encode the source once, then predict the target one token at a time."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.src_embedding = TokenEmbedding(cfg.vocab_size, cfg.d_model, cfg.pad_id)
        self.tgt_embedding = (
            self.src_embedding if cfg.share_embeddings else TokenEmbedding(cfg.vocab_size, cfg.d_model, cfg.pad_id)
        )
        self.positional_encoding = PositionalEncoding(cfg.d_model, cfg.max_positions, cfg.dropout)
        self.encoder = Encoder(cfg)
        self.decoder = Decoder(cfg)
        self.generator = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        self._init_weights()
        if cfg.tie_output:
            self.generator.weight = self.tgt_embedding.lookup.weight

    def _init_weights(self) -> None:
        for name, p in self.named_parameters():
            if p.dim() > 1 and "embedding" not in name:
                nn.init.xavier_uniform_(p)

    def encode(self, src: Tensor) -> Tensor:
        """Source tokens (B, S) -> encoder output, the "memory" (B, S, C)."""
        return self.encoder(self.positional_encoding(self.src_embedding(src)), padding_mask(src, self.cfg.pad_id))

    def decode(self, tgt_in: Tensor, memory: Tensor, src_mask: Tensor) -> tuple[Tensor, list[Tensor]]:
        """Teacher-forced pass: all target positions at once under the causal mask -> logits (B, T, V)."""
        x = self.positional_encoding(self.tgt_embedding(tgt_in))
        out = self.decoder(x, self.decoder.memory_key_values(memory), src_mask, causal_mask(tgt_in.size(1), x.device))
        return self.generator(out.hidden), out.cross_attention

    def forward(self, src: Tensor, tgt_in: Tensor) -> Tensor:
        """Teacher forcing: `tgt_in` is the gold target shifted right (bos first). Returns logits (B, T, V)."""
        return self.decode(tgt_in, self.encode(src), padding_mask(src, self.cfg.pad_id))[0]

    def decode_step(
        self,
        token: Tensor,
        position: Tensor | int,
        memory_kv: list[KeyValue],
        src_mask: Tensor,
        past_kv: list[KeyValue] | None,
    ) -> tuple[Tensor, list[KeyValue], list[Tensor]]:
        """One step of incremental decoding with the key/value cache.

        token (B, 1) at `position`; returns log-probabilities (B, V), the grown cache, and each layer's
        cross-attention weights (B, H, 1, S).
        """
        x = self.positional_encoding(self.tgt_embedding(token), position)
        out = self.decoder(x, memory_kv, src_mask, None, past_kv)  # a lone new query may see every past key
        log_probs = F.log_softmax(self.generator(out.hidden[:, -1]), dim=-1)
        return log_probs, out.self_kv, out.cross_attention

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
