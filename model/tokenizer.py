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
TOO_HIGH = re.compile(r"Vocabulary size too high \(\d+\)\. Please set it to a value <= (\d+)")


class VocabularySizeError(ValueError):
    """The text is too small for the vocabulary size asked for: `largest` is the most pieces it makes."""

    def __init__(self, vocab_size: int, largest: int):
        super().__init__(f"vocabulary size {vocab_size} is too large for this text: it makes at most {largest} pieces")
        self.vocab_size, self.largest = vocab_size, largest


def train_tokenizer(sentences: Iterable[str], output: Path, vocab_size: int = 8000) -> Path:
    """Train a BPE model on `sentences` (both languages mixed) and write `output` (a `.model` file)."""
    model = io.BytesIO()
    try:
        train_sentencepiece(sentences, model, vocab_size)
    except RuntimeError as exc:
        if not (match := TOO_HIGH.search(str(exc))):
            raise
        raise VocabularySizeError(vocab_size, int(match.group(1))) from None
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
