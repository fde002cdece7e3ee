"""Subword tokenizer: one joint SentencePiece BPE vocabulary for source and target.

Joint, because English, French and German share most of their script and many subwords (names,
numbers, cognates): one table lets the model share embeddings between encoder, decoder and output
layer, which matters for a small model on a small corpus. The saved `.model` file is all the service
needs (the `sentencepiece` package, no torch).
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from pathlib import Path

import sentencepiece as spm

PAD_ID, UNK_ID, BOS_ID, EOS_ID = 0, 1, 2, 3


def train_tokenizer(sentences: Iterable[str], output: Path, vocab_size: int = 8000) -> Path:
    """Train a BPE model on `sentences` (both languages mixed) and write `output` (a `.model` file)."""
    model = io.BytesIO()
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
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_bytes(model.getvalue())
    return output


def load_tokenizer(path_or_bytes: Path | bytes) -> spm.SentencePieceProcessor:
    """Load a tokenizer from its `.model` file or the file's bytes (as stored in checkpoints)."""
    if isinstance(path_or_bytes, bytes):
        return spm.SentencePieceProcessor(model_proto=path_or_bytes)
    return spm.SentencePieceProcessor(model_file=str(path_or_bytes))
