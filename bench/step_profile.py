"""Where a decoder step of the scheduler spends its time: onnxruntime (no GIL) against Python (holds the GIL).

    python -m bench.step_profile --model-dir models/en-fr

For cohorts of 1 and 32 sentences, greedy and beam 4, it steps each cohort to the end and reports the time
per step inside the decoder session's `run` and outside it (search, cache selection, bookkeeping: the part
that holds the GIL). With W workers, steps overlap at most 1 / (Python share) times, whatever W is. Each
decoder interface of the model's variant (in-place step graph, concatenating fallback) is measured, in turn.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import onnxruntime as ort

from bench.machine import benchmark_sentences, describe_machine
from service.decoding.engine import Engine, ModelLoadError
from service.scheduling.cohort import Cohort, Sentence
from service.types import DecodeOptions

CASES = ((1, 1), (32, 1), (1, 4), (32, 4))  # (sentences, beam size)


class TimedSession:
    """An onnxruntime session that adds up the time spent in `run`."""

    def __init__(self, session: ort.InferenceSession) -> None:
        self._session = session
        self.seconds = 0.0

    def run(self, *args: Any, **kwargs: Any) -> Any:
        return self._timed(self._session.run, *args, **kwargs)

    def run_with_iobinding(self, *args: Any, **kwargs: Any) -> Any:
        return self._timed(self._session.run_with_iobinding, *args, **kwargs)

    def _timed(self, run: Any, *args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return run(*args, **kwargs)
        finally:
            self.seconds += time.perf_counter() - start

    def __getattr__(self, name: str) -> Any:
        return getattr(self._session, name)


class Kept:
    """An owner whose request never goes away."""

    gone = False


def profile(engine: Engine, session: TimedSession, texts: list[str], beam_size: int) -> tuple[float, float, int]:
    """Seconds in onnxruntime, seconds in total, and decoder steps, stepping one cohort of `texts` to its end."""
    options = DecodeOptions(beam_size=beam_size)
    cohort = Cohort(engine, [Sentence(Kept(), i, engine.source_ids(t), options) for i, t in enumerate(texts)])
    session.seconds, steps = 0.0, 0
    start = time.perf_counter()
    while cohort.rows:
        cohort.step()
        steps += 1
    return session.seconds, time.perf_counter() - start, steps


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.step_profile", description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, default=Path("models/en-fr"))
    parser.add_argument("--text-file", type=Path, help="sentences, one a line (default: the Multi30k test set)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    texts = benchmark_sentences(args.model_dir, args.text_file, 1000)
    engines = timed_engines(args.model_dir)
    print(f"Machine: {describe_machine()['summary']}, 1 intra-op thread\n")
    print("| decoder | sentences | beam | ms/step onnxruntime | ms/step Python | Python share |")
    print("|---|---:|---:|---:|---:|---:|")
    for count, beam in CASES:
        for interface, (engine, session) in engines.items():
            runs = [profile(engine, session, texts[r * count : (r + 1) * count], beam) for r in range(args.repeats)]
            ort_s, total_s, steps = (sum(run[i] for run in runs) for i in range(3))
            python_s = total_s - ort_s
            per_step = f"{ort_s / steps * 1000:.2f} | {python_s / steps * 1000:.2f}"
            print(f"| {interface} | {count} | {beam} | {per_step} | {python_s / total_s:.0%} |")
    return 0


def timed_engines(model_dir: Path) -> dict[str, tuple[Engine, TimedSession]]:
    """The default variant's engine per decoder interface it has, each with its decoder session timed."""
    engines = {}
    for interface in ("inplace", "concat"):
        try:
            loaded = Engine.load(model_dir, intra_op_threads=1, interface=interface)
        except ModelLoadError:  # exported without the in-place step graph
            continue
        session = TimedSession(loaded._decoders[interface])  # the engine's own session, timed
        parts = (loaded.manifest, loaded.variant, loaded._encoder, {interface: session}, loaded._tokenizer)
        engines[interface] = (Engine(*parts, explainer=None), session)
    return engines


if __name__ == "__main__":
    sys.exit(main())
