"""Parallel corpus: reading a split, filtering pairs by length, and token-budget batches.

A split named S of the pair (source, target) is, in the corpus directory, either two aligned files
`S.{source}` and `S.{target}` (one sentence a line, line n of one translating line n of the other: Multi30k's
`train.en.gz` / `train.fr.gz`), or one file `S.tsv` of `source<TAB>target` lines; any of them may be gzipped
(`.gz`). Aligned files win when both forms are there.
"""

from __future__ import annotations

import gzip
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from model.tokenizer import BOS_ID, EOS_ID, PAD_ID

Pair = tuple[list[int], list[int]]  # source ids (no bos/eos), target ids (no bos/eos)


class CorpusError(Exception):
    """A corpus file is missing, unreadable, empty, not UTF-8, or not aligned with its pair."""


def find_file(corpus_dir: Path, name: str) -> Path | None:
    """`name` or `name.gz` in the corpus directory, if either is a file."""
    for candidate in (corpus_dir / name, corpus_dir / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def check_corpus_dir(corpus_dir: Path) -> None:
    """A corpus directory must exist (a TSV file is not a directory: its split is named by the file)."""
    if corpus_dir.is_file():
        raise CorpusError(
            f"data.corpus_dir {corpus_dir} is a file; it must be the directory holding the split files "
            "({split}.tsv, or {split}.{source} and {split}.{target})"
        )
    if not corpus_dir.is_dir():
        raise CorpusError(f"corpus directory {corpus_dir} does not exist")


def read_lines(path: Path) -> list[str]:
    """All lines of a plain or gzipped UTF-8 file, without line ends."""
    try:
        data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, zlib.error) as exc:
        raise CorpusError(f"{path.name} is unreadable: {exc}") from None
    if not data.strip():
        raise CorpusError(f"{path.name} is empty")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise CorpusError(f"{path.name} line {line} is not valid UTF-8") from None
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    return [line.rstrip("\r") for line in lines]


def read_parallel(corpus_dir: Path, split: str, source: str, target: str) -> tuple[list[str], list[str]]:
    """The aligned source and target sentences of a split, from aligned files or a TSV file."""
    check_corpus_dir(corpus_dir)
    sides = [find_file(corpus_dir, f"{split}.{language}") for language in (source, target)]
    if sides[0] and sides[1]:
        return read_aligned(sides[0], sides[1])
    if (tsv := find_file(corpus_dir, f"{split}.tsv")) is not None:
        return read_tsv(tsv)
    missing = " and ".join(f"{split}.{lang}" for lang, path in zip((source, target), sides, strict=True) if not path)
    raise CorpusError(
        f"split {split!r} not found in {corpus_dir}: {missing} (or .gz) missing, and no {split}.tsv "
        f"(a split is {split}.{source} + {split}.{target} aligned line by line, or {split}.tsv of "
        "source<TAB>target lines, each optionally gzipped)"
    )


def read_aligned(src_path: Path, tgt_path: Path) -> tuple[list[str], list[str]]:
    """Two files aligned line by line."""
    src, tgt = read_lines(src_path), read_lines(tgt_path)
    if len(src) != len(tgt):
        raise CorpusError(f"{tgt_path.name} has {len(tgt)} lines but {src_path.name} has {len(src)}")
    return src, tgt


def read_tsv(path: Path) -> tuple[list[str], list[str]]:
    """A file of source<TAB>target lines."""
    src, tgt = [], []
    for number, line in enumerate(read_lines(path), 1):
        fields = line.split("\t")
        if len(fields) != 2:
            raise CorpusError(
                f"{path.name} line {number} has {len(fields)} tab-separated fields; each line must be "
                "source<TAB>target (one tab)"
            )
        src.append(fields[0])
        tgt.append(fields[1])
    return src, tgt


@dataclass
class FilterCounts:
    """How many sentence pairs were read, kept, and dropped for each reason."""

    read: int = 0
    kept: int = 0
    empty: int = 0  # a side has no tokens
    too_long: int = 0  # a side has more than max_sentence_tokens subwords
    bad_ratio: int = 0  # one side is more than max_length_ratio times longer than the other

    def summary(self) -> str:
        return (
            f"{self.kept}/{self.read} pairs kept "
            f"(dropped: {self.empty} empty, {self.too_long} too long, {self.bad_ratio} length ratio)"
        )

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


def filter_pairs(
    src: list[list[int]], tgt: list[list[int]], max_tokens: int, max_ratio: float
) -> tuple[list[Pair], FilterCounts]:
    """Drop pairs with an empty side, a side over `max_tokens` subwords, or lengths too far apart."""
    counts, kept = FilterCounts(read=len(src)), []
    for s, t in zip(src, tgt, strict=True):
        if not s or not t:
            counts.empty += 1
        elif max(len(s), len(t)) > max_tokens:
            counts.too_long += 1
        elif max(len(s), len(t)) > max_ratio * min(len(s), len(t)):
            counts.bad_ratio += 1
        else:
            kept.append((s, t))
    counts.kept = len(kept)
    return kept, counts


def pair_lengths(pairs: list[Pair]) -> np.ndarray:
    """Padded length each pair needs: source + eos, or target + bos (+ eos, shifted off by teacher forcing)."""
    return np.array([max(len(s), len(t)) + 1 for s, t in pairs], dtype=np.int64)


def cut_by_budget(order: np.ndarray, lengths: np.ndarray, max_tokens: int) -> list[np.ndarray]:
    """Cut pairs sorted by length into batches of at most `max_tokens` (batch size x longest, padding included)."""
    batches, start = [], 0
    for end in range(1, len(order) + 1):
        if end - start > 1 and (end - start) * lengths[order[end - 1]] > max_tokens:
            batches.append(order[start : end - 1])
            start = end - 1
    if start < len(order):
        batches.append(order[start:])
    return batches


def bucketed_batches(
    lengths: np.ndarray, max_tokens: int, rng: np.random.Generator | None, chunk_size: int = 10000
) -> list[np.ndarray]:
    """Batches of similar lengths: shuffle, sort by length within chunks of `chunk_size`, cut by token budget,
    then shuffle the batch order. Without `rng`, a fixed order (for validation)."""
    order = rng.permutation(len(lengths)) if rng is not None else np.arange(len(lengths))
    batches = []
    for start in range(0, len(order), chunk_size):
        chunk = order[start : start + chunk_size]
        batches += cut_by_budget(chunk[np.argsort(lengths[chunk], kind="stable")], lengths, max_tokens)
    if rng is not None:
        batches = [batches[i] for i in rng.permutation(len(batches))]
    return batches


def epoch_batches(
    lengths: np.ndarray, max_tokens: int, seed: int, epoch: int, rank: int = 0, world_size: int = 1
) -> list[np.ndarray]:
    """This rank's batches for one epoch: the same for a given (seed, epoch), a disjoint shard per rank."""
    batches = bucketed_batches(lengths, max_tokens, np.random.default_rng([seed, epoch]))
    usable = len(batches) // world_size * world_size  # every rank takes the same number of steps
    return batches[rank:usable:world_size]


@dataclass
class Batch:
    """Padded source (B, S) ending in eos, and target (B, T+1) as bos + target + eos."""

    src: Tensor
    tgt: Tensor

    def to(self, device: torch.device) -> Batch:
        return Batch(self.src.to(device, non_blocking=True), self.tgt.to(device, non_blocking=True))


def pad(sequences: list[list[int]]) -> Tensor:
    """Right-pad id lists with PAD_ID into one (N, longest) tensor."""
    out = torch.full((len(sequences), max(len(s) for s in sequences)), PAD_ID, dtype=torch.long)
    for i, s in enumerate(sequences):
        out[i, : len(s)] = torch.tensor(s, dtype=torch.long)
    return out


def collate(pairs: list[Pair], indices: np.ndarray) -> Batch:
    """The batch of the pairs at `indices`."""
    chosen = [pairs[i] for i in indices]
    return Batch(pad([s + [EOS_ID] for s, _ in chosen]), pad([[BOS_ID] + t + [EOS_ID] for _, t in chosen]))
