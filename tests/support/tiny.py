"""A tiny translation task and model, trained in seconds: enough for outputs that vary and end with eos."""

from __future__ import annotations

import random
from pathlib import Path

import torch
import torch.nn.functional as F

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


def train_tiny_checkpoint(directory: Path, steps: int = 250, seed: int = 0) -> Path:
    """Train a tokenizer and a tiny Transformer on the word-translation task; returns the checkpoint path."""
    torch.manual_seed(seed)
    pairs = sentence_pairs(600, seed)
    tokenizer_path = train_tokenizer([s for pair in pairs for s in pair], directory / "tiny.model", vocab_size=120)
    tokenizer = load_tokenizer(tokenizer_path)
    cfg = ModelConfig(
        vocab_size=tokenizer.get_piece_size(),
        d_model=32,
        n_heads=4,
        d_ff=64,
        n_encoder_layers=2,
        n_decoder_layers=2,
        dropout=0.0,
        max_positions=64,
    )
    model = Transformer(cfg)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    encoded = [(tokenizer.encode(s) + [EOS_ID], [BOS_ID] + tokenizer.encode(t) + [EOS_ID]) for s, t in pairs]
    rng = random.Random(seed)
    for _ in range(steps):
        batch = rng.sample(encoded, 32)
        src, tgt = _pad([s for s, _ in batch]), _pad([t for _, t in batch])
        logits = model(src, tgt[:, :-1])
        loss = F.cross_entropy(logits.flatten(0, 1), tgt[:, 1:].flatten(), ignore_index=PAD_ID)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    path = directory / "tiny.pt"
    save_checkpoint(
        path,
        model.eval(),
        tokenizer_path.read_bytes(),
        source_language="en",
        target_language="fr",
        metrics={"loss": loss.item()},
        data="synthetic word-by-word pairs",
        step=steps,
    )
    return path


def _pad(sequences: list[list[int]]) -> torch.Tensor:
    out = torch.full((len(sequences), max(map(len, sequences))), PAD_ID, dtype=torch.long)
    for i, s in enumerate(sequences):
        out[i, : len(s)] = torch.tensor(s)
    return out
