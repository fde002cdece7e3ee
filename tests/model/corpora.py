"""Synthetic parallel corpora written to disk, and where the real Multi30k corpus is expected."""

from __future__ import annotations

import gzip
import random
from pathlib import Path

from model.config import DEFAULT_CORPUS_DIR, PROJECT_ROOT

MULTI30K = (PROJECT_ROOT / DEFAULT_CORPUS_DIR).resolve()
LETTERS = "abcdefghijklmnopqrst"


def write_lines(path: Path, lines: list[str]) -> Path:
    """Write lines as UTF-8, gzipped when the name ends in .gz."""
    data = "".join(line + "\n" for line in lines).encode("utf-8")
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
    return path


def reversal_corpus(directory: Path, sizes: dict[str, int], seed: int = 0) -> Path:
    """Synthetic parallel corpus: the target is the source's letters in reverse order (3 to 8 letters)."""
    rng = random.Random(seed)
    directory.mkdir(parents=True, exist_ok=True)
    for split, n in sizes.items():
        sources = [[rng.choice(LETTERS) for _ in range(rng.randint(3, 8))] for _ in range(n)]
        write_lines(directory / f"{split}.src.gz", [" ".join(s) for s in sources])
        write_lines(directory / f"{split}.tgt.gz", [" ".join(reversed(s)) for s in sources])
    return directory


def made_up_words(n: int, seed: int = 0) -> list[str]:
    """`n` English-like pseudo-words of 3 to 6 letters."""
    rng = random.Random(seed)
    return sorted({"".join(rng.choice(LETTERS) for _ in range(rng.randint(3, 6))) for _ in range(n)})


def word_mapping_tsv(directory: Path, sizes: dict[str, int], seed: int = 0) -> Path:
    """Synthetic en-xx corpus as `{split}.tsv` files: each source word maps to one made-up target word."""
    rng = random.Random(seed)
    words = made_up_words(24, seed)
    mapping = {word: word[::-1] + "o" for word in words}
    directory.mkdir(parents=True, exist_ok=True)
    for split, n in sizes.items():
        sentences = [rng.choices(words, k=rng.randint(2, 6)) for _ in range(n)]
        rows = [" ".join(s) + "\t" + " ".join(mapping[w] for w in s) for s in sentences]
        write_lines(directory / f"{split}.tsv", rows)
    return directory
