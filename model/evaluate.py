"""Translating text with the PyTorch reference decoder, and scoring it with sacreBLEU and chrF."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import sentencepiece as spm
from sacrebleu.metrics import BLEU, CHRF

from model.model import Transformer
from model.reference import translate_ids
from model.tokenizer import BOS_ID, EOS_ID


def encode_sources(tokenizer: spm.SentencePieceProcessor, lines: list[str], max_length: int) -> list[list[int]]:
    """Sentences -> id lists ending in eos, cut to `max_length` ids (the model's position table)."""
    return [ids[: max_length - 1] + [EOS_ID] for ids in tokenizer.encode(lines)]


def translate_lines(
    model: Transformer,
    tokenizer: spm.SentencePieceProcessor,
    lines: list[str],
    beam_size: int = 1,
    length_penalty: float = 1.0,
    batch_sentences: int = 64,
) -> list[str]:
    """Detokenized best translation of each line (greedy when beam_size is 1), in input order."""
    sources = encode_sources(tokenizer, lines, model.cfg.max_positions)
    order = np.argsort([len(s) for s in sources], kind="stable")  # similar lengths share a batch
    outputs: list[str] = [""] * len(lines)
    for start in range(0, len(order), batch_sentences):
        chunk = order[start : start + batch_sentences]
        results = translate_ids(
            model, [sources[i] for i in chunk], BOS_ID, EOS_ID, beam_size=beam_size, length_penalty=length_penalty
        )
        for i, n_best in zip(chunk, results, strict=True):
            outputs[i] = tokenizer.decode(n_best[0].token_ids)
    return outputs


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
