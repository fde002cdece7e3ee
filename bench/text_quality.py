"""Casing and the repeat guard on Multi30k test_2017_flickr, through the service's own text handling.

Prints, for the model (greedy, or --beam-size): BLEU of normal-case input; of the same sentences in capitals, sent
as they are and through the casing handling (detect, translate in sentence case, restore), both compared
case-insensitively; and how many outputs repeat a word trigram, with the repeat guard off and at n-gram sizes of
3 and 4 words.

Run: python -m bench.text_quality --model-dir models/en-fr [--beam-size 4]
"""

from __future__ import annotations

import argparse
import gzip
import re
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import sacrebleu

from bench.machine import CORPUS_DIR, describe_machine
from service.decoding.engine import Engine
from service.text.document import split_document
from service.types import DecodeOptions

SPLIT = "test_2017_flickr"
BATCH = 32


def read(corpus_dir: Path, language: str, limit: int) -> list[str]:
    path = corpus_dir / f"{SPLIT}.{language}.gz"
    if not path.is_file():
        raise SystemExit(f"not found: {path} (the Multi30k corpus is expected beside the project)")
    with gzip.open(path, "rt", encoding="utf-8") as lines:
        return [line.strip() for _, line in zip(range(limit), lines, strict=False)]


def translate_raw(engine: Engine, sentences: Sequence[str], options: DecodeOptions) -> list[str]:
    """The engine on the sentences as they are."""
    out: list[str] = []
    for i in range(0, len(sentences), BATCH):
        out += [t.best.text for t in engine.translate(sentences[i : i + BATCH], options)]
    return out


def translate_as_service(engine: Engine, texts: Sequence[str], options: DecodeOptions) -> list[str]:
    """Each text as the service handles it: sentences in sentence case, translations cased like their source."""
    language = engine.manifest.source_language
    documents = [split_document(t, language, engine.count_tokens, engine.max_source_tokens) for t in texts]
    translated = iter(translate_raw(engine, [s.source for d in documents for s in d.sentences], options))
    return [d.assemble([next(translated) for _ in d.sentences]) for d in documents]


def repeated_trigrams(outputs: Sequence[str]) -> int:
    """Outputs in which a word trigram occurs more than once."""
    count = 0
    for output in outputs:
        words = re.findall(r"\w+", output.lower())
        grams = [tuple(words[i : i + 3]) for i in range(len(words) - 2)]
        count += len(grams) != len(set(grams))
    return count


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, default=Path("models/en-fr"))
    parser.add_argument("--sentences", type=int, default=1000)
    parser.add_argument("--corpus-dir", type=Path, default=CORPUS_DIR)
    parser.add_argument("--beam-size", type=int, default=1)
    args = parser.parse_args(argv)
    engine = Engine.load(args.model_dir, intra_op_threads=1)
    source = read(args.corpus_dir, engine.manifest.source_language, args.sentences)
    reference = [read(args.corpus_dir, engine.manifest.target_language, args.sentences)]
    options = DecodeOptions(beam_size=args.beam_size)
    print(
        f"{describe_machine()['summary']}; {engine.manifest.name} ({engine.variant}), {len(source)} sentences,"
        f" beam size {args.beam_size}"
    )

    def bleu(outputs: list[str], lowercase: bool = False) -> float:
        return float(sacrebleu.corpus_bleu(outputs, reference, lowercase=lowercase).score)

    plain = translate_as_service(engine, source, options)
    upper = [s.upper() for s in source]
    print(f"normal case: BLEU {bleu(plain):.2f}, case-insensitive {bleu(plain, lowercase=True):.2f}")
    upper_raw = translate_raw(engine, upper, options)
    print(f"ALL CAPS sent as they are: case-insensitive BLEU {bleu(upper_raw, True):.2f}")
    upper_cased = translate_as_service(engine, upper, options)
    print(f"ALL CAPS with the casing handling: case-insensitive BLEU {bleu(upper_cased, True):.2f}")
    title = translate_as_service(engine, [s.title() for s in source], options)
    print(f"Title Case with the casing handling: case-insensitive BLEU {bleu(title, True):.2f}")
    print("| repeat guard | outputs with a repeated word trigram | BLEU |")
    print("|---|---:|---:|")
    print(f"| off | {repeated_trigrams(plain)} | {bleu(plain):.2f} |")
    for size in (3, 4):
        guarded = translate_as_service(engine, source, replace(options, no_repeat_ngram_size=size))
        print(f"| {size}-grams | {repeated_trigrams(guarded)} | {bleu(guarded):.2f} |")


if __name__ == "__main__":
    main()
