"""What the text handling costs beside the translation: splitting, casing, token counting and language
identification of a request (validation), and putting the response together, for a one-sentence text, a
5-sentence paragraph and a 1,000-sentence document; p50 and p99, and the translation time of the same text.

Run: python -m bench.text_overhead --model-dir models/en-fr --corpus-dir /path/to/multi30k
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from bench.machine import CORPUS_DIR, corpus_sentences, describe_machine
from service.api.translation.v1 import translation_pb2 as pb
from service.config import Settings
from service.convert import to_response
from service.decoding.backend import ModelSet
from service.decoding.engine import Engine
from service.text.language import DETECTOR
from service.types import Translation
from service.validation import Job, validate

BATCH = 32


def documents(sentences: list[str]) -> dict[str, str]:
    """The three texts: one sentence, a paragraph of five, and 1,000 sentences in paragraphs of ten (a caption
    without final punctuation gets a full stop: otherwise it runs into the next one as one sentence)."""
    sentences = [s if s.endswith((".", "!", "?")) else s + "." for s in sentences]
    paragraphs = [" ".join(sentences[i : i + 10]) for i in range(0, 1000, 10)]
    return {
        "1 sentence": sentences[0],
        "5-sentence paragraph": " ".join(sentences[:5]),
        "1,000 sentences": "\n\n".join(paragraphs),
    }


def percentiles(call: Callable[[], object], repeats: int) -> tuple[float, float]:
    """p50 and p99 of `call`, in ms."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(1000 * (time.perf_counter() - start))
    return float(np.percentile(times, 50)), float(np.percentile(times, 99))


def translate(engine: Engine, job: Job) -> list[list[Translation]]:
    """The job's sentences through the engine in batches of 32, grouped back per text."""
    sources = [s.source for d in job.documents for s in d.sentences]
    results = []
    for i in range(0, len(sources), BATCH):
        results += engine.translate(sources[i : i + BATCH], job.options)
    done = iter(results)
    return [[next(done) for _ in d.sentences] for d in job.documents]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, default=Path("models/en-fr"))
    parser.add_argument("--corpus-dir", type=Path, default=CORPUS_DIR)
    parser.add_argument(
        "--repeats", type=int, default=200, help="runs of the text handling (a tenth for 1,000 sentences)"
    )
    args = parser.parse_args(argv)
    engine = Engine.load(args.model_dir, intra_op_threads=1)
    models, settings = ModelSet({engine.manifest.name: engine}), Settings()
    DETECTOR.load()
    sentences = corpus_sentences(engine.manifest.source_language, 1000, args.corpus_dir)
    print(f"{describe_machine()['summary']}; {engine.manifest.name} ({engine.variant}), greedy, ms")
    print(
        "| text | text handling p50 | p99 | of which language id p50 | translation p50 | p99 |"
        " handling / translation | response KiB |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, text in documents(sentences).items():
        measure(name, text, engine, models, settings, max(args.repeats // (10 if len(text) > 10_000 else 1), 5))


def measure(name: str, text: str, engine: Engine, models: ModelSet, settings: Settings, repeats: int) -> None:
    """Prints one row: the text handling of a request of `text`, and the translation of its sentences."""
    request = pb.TranslateRequest(texts=[text])
    job = validate(request, models, settings)
    translated = translate(engine, job)
    handling = percentiles(lambda: to_response(validate(request, models, settings), translated, "id"), repeats)
    language = percentiles(lambda: DETECTOR.detect(text), repeats)
    translation = percentiles(lambda: translate(engine, job), max(repeats // 20, 3))
    size = to_response(job, translated, "id").ByteSize()
    print(
        f"| {name} | {handling[0]:.2f} | {handling[1]:.2f} | {language[0]:.2f} | {translation[0]:.1f} |"
        f" {translation[1]:.1f} | {100 * handling[0] / translation[0]:.1f}% | {size / 1024:.1f} |",
        flush=True,
    )


if __name__ == "__main__":
    main()
