"""What the attention-detail graph costs: requests that do not ask for it, and requests that do.

    python -m bench.explain_cost --model-dir DIR [--sentences 200]

DIR must hold explain.onnx (exported by model/export.py). The same model is loaded twice, with and without the
graph (a copy whose manifest does not list it), and the two are called in alternation on the same sentences,
greedy at batch 1: the median latency of plain requests on each, of attention_detail requests, the graph's size
and how much the process grows loading each engine.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench.machine import benchmark_sentences, describe_machine
from bench.server import rss_bytes
from service.decoding.engine import Engine
from service.decoding.manifest import EXPLAIN_FILE, MANIFEST_FILE
from service.types import DecodeOptions

PLAIN = DecodeOptions()
DETAIL = DecodeOptions(attention_detail=True)


def without_graph(model_dir: Path, into: Path) -> Path:
    """A copy of `model_dir` whose manifest does not list the attention-detail graph."""
    copy = Path(shutil.copytree(model_dir, into / model_dir.name, ignore=shutil.ignore_patterns(EXPLAIN_FILE)))
    manifest = json.loads((copy / MANIFEST_FILE).read_text())
    manifest["explain"] = ""
    del manifest["files"][EXPLAIN_FILE]
    (copy / MANIFEST_FILE).write_text(json.dumps(manifest))
    return copy


def timed(call: Callable[[str], object], sentence: str, times: list[float]) -> None:
    """Appends how long `call(sentence)` took, in ms, to `times`."""
    start = time.perf_counter()
    call(sentence)
    times.append((time.perf_counter() - start) * 1000)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.explain_cost", description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, required=True)
    parser.add_argument("--sentences", type=int, default=200, help="how many Multi30k test sentences")
    parser.add_argument("--text-file", type=Path, help="sentences to translate instead, one a line")
    parser.add_argument("--intra-op-threads", type=int, default=1)
    args = parser.parse_args(argv)
    sentences = benchmark_sentences(args.model_dir, args.text_file, args.sentences)
    with tempfile.TemporaryDirectory() as scratch:
        before = rss_bytes(os.getpid())
        plain_engine = Engine.load(without_graph(args.model_dir, Path(scratch)), intra_op_threads=args.intra_op_threads)
        loaded_plain = rss_bytes(os.getpid())
        explaining = Engine.load(args.model_dir, intra_op_threads=args.intra_op_threads)
        loaded_both = rss_bytes(os.getpid())
        assert explaining.explains and not plain_engine.explains
        for engine in (plain_engine, explaining):
            engine.translate(sentences[:5], PLAIN)  # warm-up
        calls: dict[str, Callable[[str], object]] = {
            "without the graph": lambda s: plain_engine.translate([s], PLAIN),
            "with the graph, not asked": lambda s: explaining.translate([s], PLAIN),
            "asked": lambda s: explaining.translate([s], DETAIL),
        }
        times: dict[str, list[float]] = {name: [] for name in calls}
        names = list(calls)
        for i, sentence in enumerate(sentences):
            for name in names[i % 3 :] + names[: i % 3]:  # each kind of call first as often as the others
                timed(calls[name], sentence, times[name])
    print(f"machine: {describe_machine()['summary']}")
    print(f"model: {args.model_dir}, {len(sentences)} sentences, greedy, batch 1, alternating")
    for name, values in times.items():
        print(f"  {name:28s} median {statistics.median(values):7.2f} ms   mean {statistics.fmean(values):7.2f} ms")
    mib = 2**20
    print(f"  {EXPLAIN_FILE}: {(args.model_dir / EXPLAIN_FILE).stat().st_size / mib:.1f} MiB on disk")
    print(f"  RSS growth: loading the engine without the graph {(loaded_plain - before) / mib:.1f} MiB,")
    print(f"              then the same engine with the graph {(loaded_both - loaded_plain) / mib:.1f} MiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
