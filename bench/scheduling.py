"""Continuous (step-level) scheduling against request-level batching, side by side in one run.

    python -m bench.scheduling --models-root models --model en-fr --duration 10

For each scheduler (MT_SCHEDULER=batch, then continuous once per --interfaces, MT_DECODER_INTERFACE) a fresh
service runs these scenarios:
* lone: a one-sentence request on the idle server (median of 5);
* beside heavy: a one-sentence request while a heavy request (64 long texts, beam 8) runs, and another right
  after cancelling the heavy request;
* mixed: 64 clients sending single sentences and 4 clients sending 8 long texts with beam 4, for --duration s:
  p50/p99 latency of the single sentences and sentences/s;
* saturation: 64 clients sending single sentences for --duration s: sentences/s;
* SIGTERM (grace period 2 s) while 4 heavy requests run: seconds until the process exits, requests answered
  and refused UNAVAILABLE.
With --checkpoint (the weights of the model directory, e.g. from `python -m model.recover`), the saturation
sentences are also translated offline by CTranslate2 with inter_threads=2, intra_threads=1, max_batch_size=32
(int8 and float32, the best reported), for the saturation target.
Prints a markdown table and the machine; the heavy requests use the longest sentences of the test set.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc
import numpy as np

from bench.machine import benchmark_sentences, describe_machine
from bench.server import ServerProcess
from service.api.translation.v1 import translation_pb2 as pb
from service.api.translation.v1 import translation_pb2_grpc as pb_grpc

HEAVY_TEXTS, HEAVY_BEAM = 64, 8
MIXED_SINGLE_CLIENTS, MIXED_HEAVY_CLIENTS, MIXED_HEAVY_TEXTS, MIXED_HEAVY_BEAM = 64, 4, 8, 4
SATURATION_CLIENTS = 64
HEAVY_HEAD_START_S = 1.0  # the heavy request runs this long before the lone one is sent
SIGTERM_HEAVY_REQUESTS, GRACE_PERIOD_S = 4, 2.0
CT2_INTER_THREADS, CT2_INTRA_THREADS, CT2_MAX_BATCH = 2, 1, 32


@dataclass(frozen=True)
class Texts:
    singles: list[str]
    long: list[str]


class Calls:
    """Translate calls on one channel, timed."""

    def __init__(self, channel: grpc.aio.Channel, model: str) -> None:
        self.stub = pb_grpc.TranslatorStub(channel)
        self.model = model

    def call(self, texts: Sequence[str], beam_size: int = 1) -> grpc.aio.UnaryUnaryCall:
        return self.stub.Translate(pb.TranslateRequest(texts=list(texts), model=self.model, beam_size=beam_size))

    async def timed(self, texts: Sequence[str], beam_size: int = 1) -> float:
        start = time.perf_counter()
        await self.call(texts, beam_size)
        return time.perf_counter() - start


async def lone(calls: Calls, texts: Texts) -> dict[str, float]:
    latencies = [await calls.timed(texts.singles[i : i + 1]) for i in range(5)]
    return {"lone_s": float(np.median(latencies))}


async def beside_heavy(calls: Calls, texts: Texts) -> dict[str, float]:
    """A lone sentence while a heavy request runs; then, with a new heavy request, right after cancelling it."""
    heavy = calls.call(texts.long[:HEAVY_TEXTS], HEAVY_BEAM)
    await asyncio.sleep(HEAVY_HEAD_START_S)
    beside = await calls.timed(texts.singles[:1])
    heavy.cancel()
    heavy = calls.call(texts.long[:HEAVY_TEXTS], HEAVY_BEAM)
    await asyncio.sleep(HEAVY_HEAD_START_S)
    heavy.cancel()
    after_cancel = await calls.timed(texts.singles[1:2])
    return {"beside_heavy_s": beside, "after_cancel_s": after_cancel}


async def sigterm(server: ServerProcess, texts: Texts) -> dict[str, float]:
    """SIGTERM while heavy requests run: seconds until the process exits, and how the requests ended."""
    async with grpc.aio.insecure_channel(server.address) as channel:
        calls = Calls(channel, server.settings["MT_DEFAULT_MODEL"])
        heavy = [calls.call(texts.long[:HEAVY_TEXTS], HEAVY_BEAM) for _ in range(SIGTERM_HEAVY_REQUESTS)]
        await asyncio.sleep(HEAVY_HEAD_START_S)
        start = time.perf_counter()
        await asyncio.to_thread(server.stop)
        exit_s = time.perf_counter() - start
        ended = await asyncio.gather(*heavy, return_exceptions=True)
    unavailable = sum(isinstance(e, grpc.aio.AioRpcError) and e.code() == grpc.StatusCode.UNAVAILABLE for e in ended)
    answered = sum(not isinstance(e, BaseException) for e in ended)
    return {"sigterm_exit_s": exit_s, "sigterm_answered": answered, "sigterm_unavailable": unavailable}


async def closed_loop(
    calls: Calls, clients: int, texts: list[list[str]], beam_size: int, until: float, latencies: list[float]
) -> int:
    """`clients` callers sending the texts in turn until `until`; returns the sentences translated."""
    done = 0

    async def client(offset: int) -> None:
        nonlocal done
        i = offset
        while time.perf_counter() < until:
            batch = texts[i % len(texts)]
            latencies.append(await calls.timed(batch, beam_size))
            done += len(batch)
            i += clients

    await asyncio.gather(*(client(c) for c in range(clients)))
    return done


async def mixed(calls: Calls, texts: Texts, duration: float) -> dict[str, float]:
    until = time.perf_counter() + duration
    start = time.perf_counter()
    single: list[float] = []
    heavy: list[float] = []
    long_batches = [texts.long[i : i + MIXED_HEAVY_TEXTS] for i in range(0, len(texts.long), MIXED_HEAVY_TEXTS)]
    counts = await asyncio.gather(
        closed_loop(calls, MIXED_SINGLE_CLIENTS, [[s] for s in texts.singles], 1, until, single),
        closed_loop(calls, MIXED_HEAVY_CLIENTS, long_batches, MIXED_HEAVY_BEAM, until, heavy),
    )
    elapsed = time.perf_counter() - start
    return {
        "mixed_single_p50_s": float(np.percentile(single, 50)),
        "mixed_single_p99_s": float(np.percentile(single, 99)),
        "mixed_sentences_per_s": sum(counts) / elapsed,
    }


async def saturation(calls: Calls, texts: Texts, duration: float) -> dict[str, float]:
    start = time.perf_counter()
    latencies: list[float] = []
    done = await closed_loop(calls, SATURATION_CLIENTS, [[s] for s in texts.singles], 1, start + duration, latencies)
    return {"saturation_sentences_per_s": done / (time.perf_counter() - start)}


async def scenarios(address: str, model: str, texts: Texts, duration: float) -> dict[str, float]:
    async with grpc.aio.insecure_channel(address) as channel:
        calls = Calls(channel, model)
        results = await lone(calls, texts)
        results |= await beside_heavy(calls, texts)
        results |= await mixed(calls, texts, duration)
        results |= await saturation(calls, texts, duration)
    return results


def run(
    models_root: Path, model: str, texts: Texts, duration: float, env: dict[str, str], interfaces: list[str]
) -> dict[str, dict]:
    results = {}
    configurations = [("batch", "auto"), *(("continuous", interface) for interface in interfaces)]
    for scheduler, interface in configurations:
        name = scheduler if len(interfaces) == 1 else f"{scheduler}, {interface}"
        settings = {"MT_SCHEDULER": scheduler, "MT_DEFAULT_MODEL": model, "MT_GRACE_PERIOD_S": str(GRACE_PERIOD_S)}
        server = ServerProcess(models_root, {**settings, **env, "MT_DECODER_INTERFACE": interface})
        server.start()
        try:
            results[name] = asyncio.run(scenarios(server.address, model, texts, duration))
            results[name] |= asyncio.run(sigterm(server, texts))
        finally:
            server.stop()
        print(f"{name}: {json.dumps(results[name])}", file=sys.stderr)
    return results


def ctranslate2_saturation(checkpoint: Path, sentences: list[str], workdir: Path) -> dict[str, float]:
    """Sentences/s of CTranslate2 translating `sentences` greedily offline, at its best compute type."""
    import ctranslate2

    from bench.ct2_convert import convert_checkpoint

    model_dir, tokenizer = convert_checkpoint(checkpoint, workdir)
    pieces = [tokenizer.encode(text, out_type=str) + ["</s>"] for text in sentences]
    best = 0.0
    for compute_type in ("int8", "float32"):
        translator = ctranslate2.Translator(
            str(model_dir), compute_type=compute_type, inter_threads=CT2_INTER_THREADS, intra_threads=CT2_INTRA_THREADS
        )
        start = time.perf_counter()
        for _ in translator.translate_iterable(iter(pieces), max_batch_size=CT2_MAX_BATCH, beam_size=1):
            pass
        best = max(best, len(pieces) / (time.perf_counter() - start))
    return {"saturation_sentences_per_s": best}


def markdown(results: dict[str, dict]) -> str:
    names = list(next(iter(results.values())))
    lines = ["| measure | " + " | ".join(results) + " |", "|---|" + "---:|" * len(results)]
    lines += [
        f"| {name} | " + " | ".join(f"{r[name]:.3f}" if name in r else "" for r in results.values()) + " |"
        for name in names
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scheduling", description=__doc__.splitlines()[0])
    parser.add_argument("--models-root", type=Path, default=Path("models"))
    parser.add_argument("--model", default="en-fr")
    parser.add_argument("--text-file", type=Path, help="sentences, one a line (default: the Multi30k test set)")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of the mixed and saturation loads")
    parser.add_argument("--intra-op-threads", type=int, default=1)
    parser.add_argument("--workers", type=int, default=0, help="MT_WORKERS of the continuous scheduler")
    parser.add_argument("--checkpoint", type=Path, help="the model's weights, for the CTranslate2 saturation row")
    parser.add_argument(
        "--interfaces", default="auto", help="MT_DECODER_INTERFACE values of the continuous scheduler, comma-separated"
    )
    args = parser.parse_args(argv)
    sentences = benchmark_sentences(args.models_root / args.model, args.text_file, 1000)
    texts = Texts(singles=sentences, long=sorted(sentences, key=len, reverse=True)[:HEAVY_TEXTS])
    env = {"MT_INTRA_OP_THREADS": str(args.intra_op_threads), "MT_WORKERS": str(args.workers)}
    results = run(args.models_root, args.model, texts, args.duration, env, args.interfaces.split(","))
    if args.checkpoint:
        with tempfile.TemporaryDirectory() as workdir:
            results["CTranslate2 offline"] = ctranslate2_saturation(args.checkpoint, texts.singles, Path(workdir))
    print(f"Machine: {describe_machine()['summary']}\n")
    print(markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
