"""A tiny translation task and model, trained in seconds: enough for outputs that vary and end with eos."""

from __future__ import annotations

import random
from pathlib import Path

import torch
import torch.nn.functional as F
from sentencepiece import SentencePieceProcessor

from model.checkpoint import save_checkpoint
from model.model import ModelConfig, Transformer
from model.tokenizer import BOS_ID, EOS_ID, PAD_ID, load_tokenizer, train_tokenizer

WORDS = {
    "cat": "chat",
    "dog": "chien",
    "house": "maison",
    "red": "rouge",
    "big": "grand",
    "small": "petit",
    "tree": "arbre",
    "water": "eau",
    "sun": "soleil",
    "moon": "lune",
    "car": "voiture",
    "book": "livre",
    "green": "vert",
    "blue": "bleu",
    "man": "homme",
    "woman": "femme",
    "child": "enfant",
    "bread": "pain",
}


def sentence_pairs(n: int, seed: int = 0) -> list[tuple[str, str]]:
    """Random word sequences and their word-by-word 'translations'."""
    rng = random.Random(seed)
    english = list(WORDS)
    pairs = []
    for _ in range(n):
        words = rng.choices(english, k=rng.randint(1, 7))
        pairs.append((" ".join(words), " ".join(WORDS[w] for w in words)))
    return pairs


def source_sentences(n: int, seed: int = 0) -> list[str]:
    """The English side of `sentence_pairs(n, seed)`."""
    return [source for source, _ in sentence_pairs(n, seed)]


def write_source_sentences(path: Path, n: int) -> Path:
    """A text file of `source_sentences(n)`, one a line, as the benchmarks read them."""
    path.write_text("\n".join(source_sentences(n)) + "\n")
    return path


TRAINING_SEEDS = 1_000_000  # training batch i is sentence_pairs(32, TRAINING_SEEDS + i): apart from the tests' seeds
HELD_OUT_SEED = 999_999
# Measured on this fixture (600 steps, Intel Xeon): held-out loss 0.023, and 99% of 200 unseen sentences translated
# exactly by greedy search, fp32 and int8 alike. The former fixture (d_model 32, 250 steps on 600 fixed sentences)
# got about half of them right, and on some CPUs its outputs flipped. Above this bound the fixture is too weak for
# the tests that compare outputs: it fails here, with its loss, not in those tests.
MAX_HELD_OUT_LOSS = 0.1


class TinyModelTooWeak(RuntimeError):
    """The tiny model did not learn its task well enough for the tests that rely on its outputs."""


def train_tiny_checkpoint(directory: Path, steps: int = 600, seed: int = 0) -> Path:
    """Train a tokenizer and a tiny Transformer on the word-translation task; returns the checkpoint path.

    Raises TinyModelTooWeak when its loss on held-out sentences is above MAX_HELD_OUT_LOSS."""
    torch.manual_seed(seed)
    tokenizer_path = train_tokenizer(
        [s for pair in sentence_pairs(600, seed) for s in pair], directory / "tiny.model", vocab_size=120
    )
    tokenizer = load_tokenizer(tokenizer_path)
    cfg = ModelConfig(
        vocab_size=tokenizer.get_piece_size(),
        d_model=64,
        n_heads=4,
        d_ff=128,
        n_encoder_layers=2,
        n_decoder_layers=2,
        dropout=0.0,
        max_positions=64,
    )
    model = Transformer(cfg)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    decay = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1 - step / steps)  # down to 0 at the end
    for step in range(steps):
        # Fresh sentences every step: the model learns the word mapping, it cannot memorize sentences.
        loss = _loss(model, tokenizer, sentence_pairs(32, seed=TRAINING_SEEDS + seed * steps + step))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        decay.step()
    model.eval()
    with torch.no_grad():
        held_out = _loss(model, tokenizer, sentence_pairs(256, seed=HELD_OUT_SEED)).item()
    if held_out > MAX_HELD_OUT_LOSS:
        raise TinyModelTooWeak(
            f"tiny model: held-out loss {held_out:.3f} after {steps} steps, want <= {MAX_HELD_OUT_LOSS}"
        )
    path = directory / "tiny.pt"
    save_checkpoint(
        path,
        model,
        tokenizer_path.read_bytes(),
        source_language="en",
        target_language="fr",
        metrics={"loss": held_out},
        data="synthetic word-by-word pairs",
        step=steps,
    )
    return path


def _loss(model: Transformer, tokenizer: SentencePieceProcessor, pairs: list[tuple[str, str]]) -> torch.Tensor:
    """Mean cross-entropy per target token of `pairs`, the decoder reading the gold target (teacher forcing)."""
    encoded = [(tokenizer.encode(s) + [EOS_ID], [BOS_ID] + tokenizer.encode(t) + [EOS_ID]) for s, t in pairs]
    src, tgt = _pad([s for s, _ in encoded]), _pad([t for _, t in encoded])
    logits = model(src, tgt[:, :-1])
    return F.cross_entropy(logits.flatten(0, 1), tgt[:, 1:].flatten(), ignore_index=PAD_ID)


def _pad(sequences: list[list[int]]) -> torch.Tensor:
    out = torch.full((len(sequences), max(map(len, sequences))), PAD_ID, dtype=torch.long)
    for i, s in enumerate(sequences):
        out[i, : len(s)] = torch.tensor(s)
    return out
