"""Training-time data augmentation: case variants of some pairs, and subword regularization (BPE-dropout).

Case augmentation adds a share of the training pairs again in ALL CAPS and in Title Case, on both sides, so
that the model (and the tokenizer, trained on the same text) has seen capitalized input at all: a captions
corpus has almost none. BPE-dropout (Provilkov et al., 2020) segments each training sentence afresh at every
step, skipping each BPE merge with probability `dropout`, as SentencePiece's sampling mode does for BPE models:
the model sees words cut in many ways, which makes it more robust to rare words and spelling variants.
"""

from __future__ import annotations

import random

import sentencepiece as spm

from model.data import Pair


def title_case(text: str) -> str:
    """Each space-separated word's first letter in upper case, the rest as it was ('a man' -> 'A Man')."""
    return " ".join(word[:1].upper() + word[1:] for word in text.split(" "))


def case_augmented(
    src: list[str], tgt: list[str], upper_fraction: float, title_fraction: float, seed: int
) -> tuple[list[str], list[str]]:
    """The pairs followed by `upper_fraction` of them in ALL CAPS and `title_fraction` in Title Case (both sides),
    chosen at random with `seed`."""
    rng = random.Random(seed)
    src, tgt = list(src), list(tgt)
    n = len(src)
    for fraction, change in ((upper_fraction, str.upper), (title_fraction, title_case)):
        chosen = sorted(rng.sample(range(n), round(fraction * n)))
        src += [change(src[i]) for i in chosen]
        tgt += [change(tgt[i]) for i in chosen]
    return src, tgt


class SubwordSampler:
    """BPE-dropout of training pairs: each side re-segmented with SentencePiece sampling, repeatably per step.

    The pairs hold ids; their text is recovered by decoding (SentencePiece's segmentation is reversible up to
    its normalization). A sampled side longer than `max_tokens` keeps its usual segmentation, so length
    filtering still holds; sampled pairs are longer, so a batch may exceed its token budget by that much."""

    def __init__(self, tokenizer: spm.SentencePieceProcessor, dropout: float, max_tokens: int, seed: int):
        self.tokenizer, self.dropout, self.max_tokens, self.seed = tokenizer, dropout, max_tokens, seed

    def __call__(self, pairs: list[Pair], step: int) -> list[Pair]:
        """The pairs re-segmented; the same for the same (seed, step), so a resumed run samples as before."""
        spm.set_random_generator_seed((self.seed * 1_000_003 + step) % 2**32)
        return [(self.sample(src), self.sample(tgt)) for src, tgt in pairs]  # one call each: repeatable order

    def sample(self, ids: list[int]) -> list[int]:
        text = self.tokenizer.decode(ids)
        sampled = self.tokenizer.encode(text, enable_sampling=True, alpha=self.dropout, nbest_size=-1)
        return sampled if len(sampled) <= self.max_tokens else ids
