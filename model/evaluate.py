"""Translating text with the PyTorch reference decoder or the service's engine, and scoring it with sacreBLEU and
chrF."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import sentencepiece as spm
from sacrebleu.metrics import BLEU, CHRF
from tqdm import tqdm

from model.data import read_parallel
from model.model import Transformer
from model.reference import translate_ids
from model.tokenizer import BOS_ID, EOS_ID
from service.types import DecodeOptions

if TYPE_CHECKING:
    from service.decoding.engine import Engine


def encode_sources(tokenizer: spm.SentencePieceProcessor, lines: list[str], max_length: int) -> list[list[int]]:
    """Sentences -> id lists ending in eos, cut to `max_length` ids (the model's position table)."""
    return [ids[: max_length - 1] + [EOS_ID] for ids in tokenizer.encode(lines)]


def translate_by_length(
    lengths: Sequence[int],
    batch_sentences: int,
    translate_batch: Callable[[list[int]], list[str]],
    progress: str | None = None,
) -> list[str]:
    """Translate sentences in batches of similar lengths (little padding), with an optional progress bar.

    `translate_batch` gets the indices of one batch's sentences and returns their translations; the result
    lists every sentence's translation in input order."""
    order = [int(i) for i in np.argsort(lengths, kind="stable")]
    outputs = [""] * len(lengths)
    with tqdm(total=len(order), desc=progress, unit="sentence", disable=progress is None) as bar:
        for start in range(0, len(order), batch_sentences):
            chunk = order[start : start + batch_sentences]
            for i, translation in zip(chunk, translate_batch(chunk), strict=True):
                outputs[i] = translation
            bar.update(len(chunk))
    return outputs


def translate_lines(
    model: Transformer,
    tokenizer: spm.SentencePieceProcessor,
    lines: list[str],
    beam_size: int = 1,
    length_penalty: float = 1.0,
    batch_sentences: int = 64,
) -> list[str]:
    """Detokenized best translation of each line by the PyTorch model (greedy when beam_size is 1), in input order."""
    sources = encode_sources(tokenizer, lines, model.cfg.max_positions)

    def translate_batch(chunk: list[int]) -> list[str]:
        results = translate_ids(
            model, [sources[i] for i in chunk], BOS_ID, EOS_ID, beam_size=beam_size, length_penalty=length_penalty
        )
        return [tokenizer.decode(n_best[0].token_ids) for n_best in results]

    return translate_by_length([len(s) for s in sources], batch_sentences, translate_batch)


def translate_with_engine(
    engine: Engine, lines: list[str], options: DecodeOptions, batch_sentences: int = 64, progress: str | None = None
) -> list[str]:
    """Best translation of each line by the service's engine (the exported graphs), in input order."""

    def translate_batch(chunk: list[int]) -> list[str]:
        return [t.best.text for t in engine.translate([lines[i] for i in chunk], options)]

    lengths = [engine.count_tokens(line) for line in lines]
    return translate_by_length(lengths, batch_sentences, translate_batch, progress)


def decoding_name(beam_size: int) -> str:
    """'greedy' or 'beam4': how scores, hypothesis files and model cards name a decoding."""
    return "greedy" if beam_size == 1 else f"beam{beam_size}"


@dataclass(frozen=True)
class Decoding:
    """How test sets are translated for scoring. The batch size is part of it: int8 graphs quantize activations
    per batch, so a sentence's translation can depend on the other sentences of its batch."""

    beam_size: int = 1
    length_penalty: float = 1.0
    batch_sentences: int = 64

    @property
    def name(self) -> str:
        return decoding_name(self.beam_size)

    def options(self) -> DecodeOptions:
        return DecodeOptions(beam_size=self.beam_size, length_penalty=self.length_penalty)


@dataclass
class Scores:
    """Corpus BLEU and chrF of some hypotheses, with sacreBLEU's signatures."""

    bleu: float
    chrf: float
    bleu_signature: str
    chrf_signature: str


def score(hypotheses: list[str], references: list[str]) -> Scores:
    """sacreBLEU (13a tokenization, cased) and chrF of detokenized hypotheses against one reference each."""
    bleu, chrf = BLEU(), CHRF()
    return Scores(
        bleu.corpus_score(hypotheses, [references]).score,
        chrf.corpus_score(hypotheses, [references]).score,
        str(bleu.get_signature()),
        str(chrf.get_signature()),
    )


def engine_scores(engine: Engine, corpus_dir: Path, split: str, decoding: Decoding) -> Scores:
    """BLEU and chrF of the engine's translations of one corpus split, in the model's language pair."""
    manifest = engine.manifest
    sources, references = read_parallel(corpus_dir, split, manifest.source_language, manifest.target_language)
    progress = f"{manifest.name} {engine.variant} {split} {decoding.name}"
    hypotheses = translate_with_engine(engine, sources, decoding.options(), decoding.batch_sentences, progress)
    return score(hypotheses, references)
