"""Subword tokenizer: one joint SentencePiece BPE vocabulary for source and target.

Joint, because English, French and German share most of their script and many subwords (names,
numbers, cognates): one table lets the model share embeddings between encoder, decoder and output
layer, which matters for a small model on a small corpus. The saved `.model` file is all the service
needs (the `sentencepiece` package, no torch).
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterable
from pathlib import Path

import sentencepiece as spm

PAD_ID, UNK_ID, BOS_ID, EOS_ID = 0, 1, 2, 3
TOO_LARGE = re.compile(r"Vocabulary size too high \(\d+\)\. Please set it to a value <= (\d+)")
TOO_SMALL = re.compile(r"Vocabulary size is smaller than required_chars\. \d+ vs (\d+)")


class VocabularySizeError(ValueError):
    """The vocabulary size asked for does not fit the text: above the most pieces it makes (`too_large`), or below
    its distinct characters plus the special pieces; `bound` is the size it must not exceed or fall below."""

    def __init__(self, vocab_size: int, bound: int, too_large: bool):
        self.vocab_size, self.bound, self.too_large = vocab_size, bound, too_large
        super().__init__(f"vocabulary size {vocab_size} is too {self.size_word} for this text: {self.allowed}")

    @property
    def size_word(self) -> str:
        return "large" if self.too_large else "small"

    @property
    def allowed(self) -> str:
        return f"{'at most' if self.too_large else 'at least'} {self.bound}"


def train_tokenizer(sentences: Iterable[str], output: Path, vocab_size: int = 8000) -> Path:
    """Train a BPE model on `sentences` (both languages mixed) and write `output` (a `.model` file)."""
    model = io.BytesIO()
    try:
        train_sentencepiece(sentences, model, vocab_size)
    except RuntimeError as exc:
        for pattern, too_large in ((TOO_LARGE, True), (TOO_SMALL, False)):
            if match := pattern.search(str(exc)):
                raise VocabularySizeError(vocab_size, int(match.group(1)), too_large) from None
        raise
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_bytes(model.getvalue())
    return output


def train_sentencepiece(sentences: Iterable[str], model: io.BytesIO, vocab_size: int) -> None:
    """SentencePiece's BPE trainer with the project's special ids, writing the model to `model`."""
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(sentences),
        model_writer=model,
        model_type="bpe",
        vocab_size=vocab_size,
        character_coverage=1.0,
        pad_id=PAD_ID,
        unk_id=UNK_ID,
        bos_id=BOS_ID,
        eos_id=EOS_ID,
        byte_fallback=False,
        num_threads=2,
        minloglevel=2,
    )


def load_tokenizer(path_or_bytes: Path | bytes) -> spm.SentencePieceProcessor:
    """Load a tokenizer from its `.model` file or the file's bytes (as stored in checkpoints)."""
    if isinstance(path_or_bytes, bytes):
        return spm.SentencePieceProcessor(model_proto=path_or_bytes)
    return spm.SentencePieceProcessor(model_file=str(path_or_bytes))
