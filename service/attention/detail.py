"""The attention-detail graph (explain.onnx): one teacher-forced pass over a source and a hypothesis that returns
every layer's and head's attention. A session of its own, run only for requests that ask for attention_detail."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import onnxruntime as ort

INPUTS = ("source_ids", "target_ids")
OUTPUTS = ("encoder_self_attention", "decoder_self_attention", "cross_attention")


@dataclass
class AttentionDetail:
    """Every attention weight of one source and one hypothesis, per layer and head (float32)."""

    source_tokens: list[str]  # what the encoder read: the source subwords, then "</s>"
    target_tokens: list[str]  # what the decoder read: "<s>", then the hypothesis's tokens
    encoder_self: np.ndarray  # (encoder layers, heads, source, source)
    decoder_self: np.ndarray  # (decoder layers, heads, target, target), upper triangle 0
    cross: np.ndarray  # (decoder layers, heads, target, source)


class Explainer:
    """Runs the attention-detail graph of one model, one sentence at a time."""

    def __init__(self, session: ort.InferenceSession) -> None:
        self._session = session

    @property
    def session(self) -> ort.InferenceSession:
        return self._session

    def explain(
        self, source_ids: Sequence[int], target_ids: Sequence[int], source_tokens: list[str], target_tokens: list[str]
    ) -> AttentionDetail:
        """The attention of every layer and head while the model reads `source_ids` and `target_ids` (bos first)."""
        feeds = {
            "source_ids": np.asarray([source_ids], dtype=np.int64),
            "target_ids": np.asarray([target_ids], dtype=np.int64),
        }
        encoder_self, decoder_self, cross = self._session.run(list(OUTPUTS), feeds)
        return AttentionDetail(source_tokens, target_tokens, encoder_self, decoder_self, cross)
