"""The lexical shortlist against the full vocabulary, on one model directory that has one (python -m
model.shortlist): BLEU of the test sets, and sentences/s with the two settings alternating in one run.

    python -m bench.shortlist_bench --model-dir models/en-fr --sentences 64

BLEU is detokenized, cased sacreBLEU through the engine, in batches of 64 as the pipeline scores; speed is
greedy and beam 4 at batch 1 and 32 over the first `--sentences` test_2016 sentences, each pass of each
setting repeated `--rounds` times, alternating, so a busy machine slows both alike.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from bench.machine import CORPUS_DIR, describe_machine, source_sentences
from model.data import read_parallel
from model.evaluate import score, translate_with_engine
from service.decoding.engine import Engine
from service.decoding.shortlist import Shortlist
from service.types import DecodeOptions

SPLITS = ("test_2016_flickr", "test_2017_flickr")
SETTINGS = {"full vocabulary": False, "shortlist": True}


def engines(model_dir: Path, variant: str) -> dict[str, Engine]:
    return {
        name: Engine.load(model_dir, intra_op_threads=1, variant=variant, shortlist=on) for name, on in SETTINGS.items()
    }


def bleu(engines: dict[str, Engine], corpus_dir: Path, beam_size: int) -> dict[str, dict[str, float]]:
    """BLEU of each setting on each test split."""
    manifest = next(iter(engines.values())).manifest
    scores: dict[str, dict[str, float]] = {}
    for split in SPLITS:
        sources, references = read_parallel(corpus_dir, split, manifest.source_language, manifest.target_language)
        options = DecodeOptions(beam_size=beam_size)
        scores[split] = {
            name: round(score(translate_with_engine(engine, sources, options, 64), references).bleu, 2)
            for name, engine in engines.items()
        }
    return scores


def speed(engines: dict[str, Engine], sentences: Sequence[str], rounds: int) -> list[dict[str, object]]:
    """Sentences/s of each setting, greedy and beam 4, batch 1 and 32; settings alternate within each round."""
    rows = []
    for beam_size in (1, 4):
        for batch in (1, 32):
            options = DecodeOptions(beam_size=beam_size)
            elapsed = dict.fromkeys(engines, 0.0)
            for _ in range(rounds):
                for name, engine in engines.items():
                    engine.translate(list(sentences[:batch]), options)  # warm-up
                    start = time.perf_counter()
                    for i in range(0, len(sentences), batch):
                        engine.translate(list(sentences[i : i + batch]), options)
                    elapsed[name] += time.perf_counter() - start
            per_s = {name: round(rounds * len(sentences) / t, 1) for name, t in elapsed.items()}
            rows.append({"search": "greedy" if beam_size == 1 else "beam 4", "batch": batch, **per_s})
            print(json.dumps(rows[-1]), flush=True)
    return rows


def candidates(model_dir: Path, engine: Engine, sentences: Sequence[str]) -> dict[str, float]:
    """Mean number of candidate words at batch 1 and 32, of the vocabulary's."""
    manifest = engine.manifest
    assert manifest.shortlist is not None
    ids = manifest.special_ids
    shortlist = Shortlist.load(model_dir / manifest.shortlist.file, manifest.vocab_size, required=(ids.eos, ids.unk))
    sources = [engine.source_ids(s) for s in sentences]
    one = np.mean([len(shortlist.candidates([s])) for s in sources])
    many = np.mean([len(shortlist.candidates(sources[i : i + 32])) for i in range(0, len(sources), 32)])
    return {"batch 1": round(float(one), 1), "batch 32": round(float(many), 1), "vocabulary": manifest.vocab_size}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.shortlist_bench", description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, required=True)
    parser.add_argument("--variant", default="int8")
    parser.add_argument("--corpus", type=Path, default=CORPUS_DIR)
    parser.add_argument("--sentences", type=int, default=64, help="test_2016 sentences timed")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--skip-bleu", action="store_true")
    args = parser.parse_args(argv)
    loaded = engines(args.model_dir, args.variant)
    sentences = source_sentences(args.model_dir, args.sentences, args.corpus)
    print(json.dumps({"machine": describe_machine()["summary"], "model": args.model_dir.name, "variant": args.variant}))
    print(json.dumps({"candidates": candidates(args.model_dir, loaded["shortlist"], sentences)}), flush=True)
    speed(loaded, sentences, args.rounds)
    if not args.skip_bleu:
        for beam_size in (4, 1):
            print(
                json.dumps({"bleu": "beam 4" if beam_size == 4 else "greedy", **bleu(loaded, args.corpus, beam_size)})
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
