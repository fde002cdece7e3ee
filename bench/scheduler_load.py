"""The continuous scheduler under load, in-process: no gRPC and no client beside it on the cores.

    python -m bench.scheduler_load --model-dir models/en-fr --interfaces auto,inplace,concat --workers 1,2

For each round, each decoder interface (MT_DECODER_INTERFACE) and each worker count, in turn (settings
alternate, so drift spreads over all of them), a `Scheduler` over the model runs for --duration s each:
* saturation: 64 callers, each sending one sentence (greedy) after the other: sentences/s;
* mixed: the same 64 callers beside 4 callers sending 8 long texts with beam 4: the single sentences' p50 / p99
  latency and sentences/s;
* heavy: the 4 beam-4 callers alone: sentences/s.
Prints one markdown table, a value per round in each cell, and the machine. It measures what the scheduler and
engine do without the transport; `bench.scheduling` measures the whole server.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from bench.machine import benchmark_sentences, describe_machine
from service.decoding.engine import Engine
from service.scheduling import Scheduler, SchedulerLimits
from service.scheduling.batcher import BatchKey, Item
from service.telemetry.metrics import Metrics
from service.types import DecodeOptions

SINGLE_CALLERS, HEAVY_CALLERS, HEAVY_TEXTS, HEAVY_BEAM = 64, 4, 8, 4
MODEL = "bench"


class Load:
    """Callers of one scheduler until a deadline, with their latencies and sentence counts."""

    def __init__(self, engine: Engine, scheduler: Scheduler, until: float) -> None:
        self.engine, self.scheduler, self.until = engine, scheduler, until
        self.sentences = 0

    async def caller(self, batches: list[list[str]], first: int, step: int, beam: int, latencies: list[float]) -> None:
        key, i = BatchKey(MODEL, DecodeOptions(beam_size=beam)), first
        while time.perf_counter() < self.until:
            texts = batches[i % len(batches)]
            started = time.perf_counter()
            await self.scheduler.submit([Item(t, self.engine.count_tokens(t)) for t in texts], key)
            latencies.append(time.perf_counter() - started)
            self.sentences += len(texts)
            i += step


async def run_load(
    engine: Engine, workers: int, sentences: list[str], heavy: list[list[str]], singles: int, duration: float
) -> dict[str, float]:
    """`singles` single-sentence callers beside the heavy callers (if any heavy batches) for `duration` s."""
    scheduler = Scheduler({MODEL: engine}, SchedulerLimits(workers=workers), Metrics())
    start = time.perf_counter()
    load = Load(engine, scheduler, start + duration)
    single: list[float] = []
    callers = [load.caller([[s] for s in sentences], c, singles, 1, single) for c in range(singles)]
    callers += [load.caller(heavy, c, HEAVY_CALLERS, HEAVY_BEAM, []) for c in range(HEAVY_CALLERS if heavy else 0)]
    try:
        await asyncio.gather(*callers)
    finally:
        await scheduler.close(5)
    result = {"sentences_per_s": load.sentences / (time.perf_counter() - start)}
    if single and heavy:
        result |= {"single_p50_s": float(np.percentile(single, 50)), "single_p99_s": float(np.percentile(single, 99))}
    return result


def scenarios(engine: Engine, workers: int, sentences: list[str], duration: float) -> dict[str, float]:
    longest = sorted(sentences, key=len, reverse=True)[: HEAVY_TEXTS * HEAVY_CALLERS * 2]
    heavy = [longest[i : i + HEAVY_TEXTS] for i in range(0, len(longest), HEAVY_TEXTS)]
    saturation = asyncio.run(run_load(engine, workers, sentences, [], SINGLE_CALLERS, duration))
    mixed = asyncio.run(run_load(engine, workers, sentences, heavy, SINGLE_CALLERS, duration))
    alone = asyncio.run(run_load(engine, workers, sentences, heavy, 0, duration))
    return {
        "saturation sentences/s": saturation["sentences_per_s"],
        "mixed single p50 s": mixed["single_p50_s"],
        "mixed single p99 s": mixed["single_p99_s"],
        "mixed sentences/s": mixed["sentences_per_s"],
        "heavy sentences/s": alone["sentences_per_s"],
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scheduler_load", description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, default=Path("models/en-fr"))
    parser.add_argument("--text-file", type=Path, help="sentences, one a line (default: the Multi30k test set)")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of each load")
    parser.add_argument("--interfaces", default="auto,concat", help="MT_DECODER_INTERFACE values, comma-separated")
    parser.add_argument("--workers", default="2", help="worker counts, comma-separated")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--intra-op-threads", type=int, default=1)
    args = parser.parse_args(argv)
    sentences = benchmark_sentences(args.model_dir, args.text_file, 1000)
    engines = {
        name: Engine.load(args.model_dir, intra_op_threads=args.intra_op_threads, interface=name)
        for name in args.interfaces.split(",")
    }
    settings = [(name, int(w)) for name in engines for w in args.workers.split(",")]
    results: dict[tuple[str, int], list[dict[str, float]]] = {s: [] for s in settings}
    for _ in range(args.rounds):
        for name, workers in settings:
            results[name, workers].append(scenarios(engines[name], workers, sentences, args.duration))
    measures = list(next(iter(results.values()))[0])
    print(f"Machine: {describe_machine()['summary']}, {args.intra_op_threads} intra-op thread(s)\n")
    print("| interface, workers | " + " | ".join(measures) + " |")
    print("|---|" + "---:|" * len(measures))
    for (name, workers), rounds in results.items():
        cells = [" / ".join(f"{r[m]:.3g}" for r in rounds) for m in measures]
        print(f"| {name}, {workers} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
