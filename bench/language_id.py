"""Language identifiers side by side on short sentences: Multi30k test_2016 captions in English, French, German.

Run: python -m bench.language_id --corpus-dir /path/to/multi30k
"""

from __future__ import annotations

import argparse
import gzip
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from bench.machine import CORPUS_DIR, describe_machine

LANGUAGES = ("en", "fr", "de")
Identify = Callable[[str], str]


def read(corpus_dir: Path, language: str, count: int) -> list[str]:
    with gzip.open(corpus_dir / f"test_2016_flickr.{language}.gz", "rt", encoding="utf-8") as lines:
        return [line.strip() for _, line in zip(range(count), lines, strict=False)]


def py3langid_all() -> Identify:
    from py3langid.langid import MODEL_DIR, MODEL_FILE, LanguageIdentifier

    identifier = LanguageIdentifier.from_modelpath(MODEL_DIR / MODEL_FILE, norm_probs=True)
    return lambda text: str(identifier.classify(text)[0])


def lingua_all() -> Identify:
    from lingua import LanguageDetectorBuilder

    detector = LanguageDetectorBuilder.from_all_languages().with_preloaded_language_models().build()
    return lambda text: _iso(detector.detect_language_of(text))


def lingua_all_low_accuracy() -> Identify:
    from lingua import LanguageDetectorBuilder

    detector = (
        LanguageDetectorBuilder.from_all_languages().with_low_accuracy_mode().with_preloaded_language_models().build()
    )
    return lambda text: _iso(detector.detect_language_of(text))


def _iso(language: object) -> str:
    return "" if language is None else str(language.iso_code_639_1.name.lower())  # type: ignore[attr-defined]


def measure(name: str, make: Callable[[], Identify], corpus: dict[str, list[str]]) -> None:
    start = time.perf_counter()
    identify = make()
    load = time.perf_counter() - start
    right, times = 0, []
    for language, sentences in corpus.items():
        for sentence in sentences:
            start = time.perf_counter()
            found = identify(sentence)
            times.append(time.perf_counter() - start)
            right += found == language
    total = sum(map(len, corpus.values()))
    times.sort()
    p99 = times[int(0.99 * (len(times) - 1))]
    print(
        f"| {name} | {100 * right / total:.1f}% | {1000 * statistics.median(times):.3f} | {1000 * p99:.3f} |"
        f" {load:.1f} |",
        flush=True,
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus-dir", type=Path, default=CORPUS_DIR)
    parser.add_argument("--sentences", type=int, default=300, help="per language")
    args = parser.parse_args(argv)
    corpus = {language: read(args.corpus_dir, language, args.sentences) for language in LANGUAGES}
    print(f"{describe_machine()['summary']}; {args.sentences} captions per language, any language allowed")
    print("| identifier | right | median ms | p99 ms | load s |")
    print("|---|---:|---:|---:|---:|")
    for name, make in (
        ("py3langid 0.4 (142 languages)", py3langid_all),
        ("lingua, all 75 languages, low accuracy mode", lingua_all_low_accuracy),
        ("lingua, all 75 languages", lingua_all),
    ):
        measure(name, make, corpus)


if __name__ == "__main__":
    main()
