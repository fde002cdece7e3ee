"""The engine's public data types: what a translation request asks for and what it gets back."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from service.attention.detail import AttentionDetail


@dataclass(frozen=True)
class DecodeOptions:
    """How to search for a translation; requests with equal options can share a batch."""

    beam_size: int = 1
    n_best: int = 1
    length_penalty: float = 1.0
    max_length: int | None = None  # cap on target tokens; None -> the engine's a * source_length + b
    return_attention: bool = False
    attention_detail: bool = False  # every layer's and head's attention of the best hypothesis
    no_repeat_ngram_size: int = 0  # block any repeat of an n-gram of this many target words; 0 = no blocking


@dataclass
class Hypothesis:
    """One candidate translation of one source sentence."""

    text: str
    token_ids: list[int]
    tokens: list[str]  # target subword strings, without bos/eos
    score: float  # sum of token log-probabilities divided by the length penalty
    attention: np.ndarray | None = None  # (target tokens, source tokens), rows sum to 1
    truncated: bool = False  # cut at the maximum length: the search stopped it before an eos


@dataclass
class StageTimings:
    """Seconds spent in each stage of one engine call (shared by all sentences of a batch)."""

    tokenize: float = 0.0
    encode: float = 0.0
    decode: float = 0.0


@dataclass
class Translation:
    """The n-best hypotheses for one source sentence, best first."""

    source_tokens: list[str]
    hypotheses: list[Hypothesis]
    timings: StageTimings = field(default_factory=StageTimings)
    detail: AttentionDetail | None = None  # of the best hypothesis, with DecodeOptions.attention_detail

    @property
    def best(self) -> Hypothesis:
        return self.hypotheses[0]
