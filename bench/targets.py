"""The service's performance targets, measured in one run on one model (greedy search), with PASS/FAIL.

    python -m bench.targets --models-root models

1. Dynamic batching: 64 clients of one sentence per request get at least 4x the sentences/s of the same
   server with batching off (MT_MAX_BATCH_SIZE=1).
2. Service overhead: at saturation (the batched run of 1.), sentences/s through gRPC are at least 85% of
   the engine's offline (Engine.translate in this process) at the server's observed mean batch size.
3. Light load: the median latency of lone one-sentence requests (one client, one request after the other)
   is at most 1.2x the engine's median time for one sentence, over the same sentences. Each request and
   the engine's translation of its sentence (in this process) run one after the other, in alternating order,
   so that both medians come from the same moments: this machine's speed drifts from minute to minute.
4. Memory: the server's RSS after 20,000 requests (the batched run of 1.) is within 5% of its RSS after
   the first 1,000. The RSS of a busy server swings by a few percent from one moment to the next (the
   allocator takes and returns memory as batches come and go), so RSS is sampled every
   `memory_samples_every` requests and "the RSS after n requests" is the median of the samples over
   the last 1,000 requests before n: noise averages out, growth does not.

The engine decodes with the options the servers give these requests, which set none: the server's default
repeat guard (MT_NO_REPEAT_NGRAM_SIZE, 3), so both sides do the same work.
The servers and the offline engine all use onnxruntime intra_op_threads=--intra-op-threads (default 1:
on 2 cores, one engine thread beside the event loop and the load generator beat the automatic setting).
The load generator runs on the same machine and takes its share of the cores. Exit status 1 if a target
fails.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shlex
import statistics
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from bench.engine_bench import TranslateBatch, measure, translator
from bench.load import (
    CORPUS_SENTENCES,
    LevelResult,
    LoadSpec,
    Target,
    markdown_table,
    run_levels,
)
from bench.machine import benchmark_sentences, describe_machine
from bench.server import ServerProcess
from service.client import TranslatorClient
from service.config import Settings
from service.decoding.engine import CPU, Engine
from service.decoding.manifest import read_manifest

UNBATCHED = {"MT_MAX_BATCH_SIZE": "1"}
SERVER_REPEAT_GUARD = Settings.model_fields["no_repeat_ngram_size"].default  # the servers run with defaults


@dataclass(frozen=True)
class Plan:
    """What the runs measure."""

    models_root: Path
    model: str
    intra_op_threads: int = 1
    concurrency: int = 64
    saturation_requests: int = 20_000
    memory_baseline: int = 1_000  # the server's RSS after this many requests is the memory target's reference
    memory_samples_every: int = 100  # requests between RSS samples of the memory run
    unbatched_requests: int = 2_000
    light_requests: int = 300
    warmup: int = 200  # unmeasured requests (offline: sentences) before each measurement
    text_file: Path | None = None  # the sentences; None: the Multi30k test set in the model's source language

    @property
    def settings(self) -> dict[str, str]:
        """The batching server's settings; the unbatched one adds UNBATCHED."""
        return {"MT_INTRA_OP_THREADS": str(self.intra_op_threads)}

    def load_command(self, settings: Mapping[str, str], concurrency: int, requests: int) -> str:
        """The load generator command that repeats one run on its own."""
        argv = ["python", "-m", "bench.load", "--models-root", str(self.models_root), "--model", self.model]
        argv += ["--concurrency", str(concurrency), "--requests", str(requests), "--warmup", str(self.warmup)]
        argv += ["--text-file", str(self.text_file)] if self.text_file else []
        return shlex.join([*argv, "--server-env", *(f"{k}={v}" for k, v in settings.items())])


@dataclass(frozen=True)
class Run:
    """One load run, and the load generator command that repeats it on its own."""

    title: str
    command: str
    result: LevelResult


@dataclass(frozen=True)
class Offline:
    """The engine in this process."""

    variant: str
    batch_size: int
    sentences_per_s: float
    target_tokens_per_s: float


@dataclass(frozen=True)
class LoneRequests:
    """Lone one-sentence requests to an idle server, each beside its sentence in the engine (see target 3)."""

    requests: int
    server_ms: float  # median, through gRPC
    engine_ms: float  # median, Engine.translate in this process


@dataclass(frozen=True)
class Verdict:
    """One target: the measured ratio, the bound it must meet, and the numbers behind it."""

    target: str
    measured: float
    requirement: str
    passed: bool
    numbers: str

    @property
    def status(self) -> str:
        return "PASS" if self.passed else "FAIL"

    def line(self) -> str:
        return f"{self.status}  {self.target}: {self.measured:.3f} ({self.requirement}); {self.numbers}"


def measure_online(plan: Plan, sentences: Sequence[str], engine: Engine) -> tuple[LoneRequests, dict[str, Run]]:
    """Lone requests then saturation on a batching server; saturation on a server with batching off."""

    def run(server: ServerProcess, settings: Mapping[str, str], title: str, concurrency: int, requests: int) -> Run:
        spec = LoadSpec(requests=requests, model=plan.model, warmup=plan.warmup, rss_every=plan.memory_samples_every)
        result = asyncio.run(run_levels(Target.of(server), sentences, spec, [concurrency]))[0]
        return Run(title, plan.load_command(settings, concurrency, requests), result)

    batching, unbatched = plan.settings, plan.settings | UNBATCHED
    with ServerProcess(plan.models_root, batching) as server:
        lone = measure_lone(server.address, translator(engine, SERVER_REPEAT_GUARD)(1), sentences, plan)
        runs = {
            "saturated": run(
                server,
                batching,
                "Saturation, batching on (also the memory run)",
                plan.concurrency,
                plan.saturation_requests,
            ),
        }
    with ServerProcess(plan.models_root, unbatched) as server:
        runs["unbatched"] = run(
            server, unbatched, "Saturation, batching off", plan.concurrency, plan.unbatched_requests
        )
    return lone, runs


def measure_lone(address: str, translate: TranslateBatch, sentences: Sequence[str], plan: Plan) -> LoneRequests:
    """One request after the other to the server at `address`, each beside the engine's translation of the same
    sentence, which goes first in every other pair; after `plan.warmup` unmeasured pairs."""
    with TranslatorClient(address) as client:

        def request(texts: list[str]) -> int:
            return len(client.translate(texts, model=plan.model).translations)

        for sentence in sentences[: plan.warmup]:
            request([sentence])
            translate([sentence])
        lone = [*sentences[plan.warmup :], *sentences][: plan.light_requests]
        times: dict[TranslateBatch, list[float]] = {request: [], translate: []}
        for i, sentence in enumerate(lone):
            for call in (request, translate) if i % 2 == 0 else (translate, request):
                times[call].append(_seconds(call, [sentence]))
    server_ms, engine_ms = (statistics.median(times[call]) * 1000 for call in (request, translate))
    return LoneRequests(len(lone), server_ms, engine_ms)


def measure_offline(engine: Engine, variant: str, sentences: Sequence[str], batch_size: int) -> Offline:
    """The engine's sentences/s at `batch_size` over all sentences, with the servers' default repeat guard."""
    sentences_per_s, tokens_per_s = measure(translator(engine, SERVER_REPEAT_GUARD)(1), sentences, batch_size)
    return Offline(variant, batch_size, sentences_per_s, tokens_per_s)


def _seconds(translate: TranslateBatch, texts: list[str]) -> float:
    start = time.perf_counter()
    translate(texts)
    return time.perf_counter() - start


def judge(lone: LoneRequests, runs: Mapping[str, Run], offline: Offline, plan: Plan) -> list[Verdict]:
    """The four targets, each a ratio against its bounds (inclusive)."""
    saturated, unbatched = (runs[k].result for k in ("saturated", "unbatched"))
    batched, alone = saturated.sentences_per_s, unbatched.sentences_per_s
    reference = rss_after(saturated.rss_mib_by_requests, plan.memory_baseline, plan.memory_baseline)
    end = rss_after(saturated.rss_mib_by_requests, saturated.requests, plan.memory_baseline)
    speedup, share = batched / alone, batched / offline.sentences_per_s
    slowdown, growth = lone.server_ms / lone.engine_ms, end / reference
    return [
        Verdict(
            "dynamic batching",
            speedup,
            ">= 4",
            speedup >= 4,
            f"{batched:.1f} sentences/s batched vs {alone:.1f} with MT_MAX_BATCH_SIZE=1, {plan.concurrency} clients",
        ),
        Verdict(
            "service overhead",
            share,
            ">= 0.85",
            share >= 0.85,
            f"{batched:.1f} sentences/s through gRPC vs {offline.sentences_per_s:.1f} offline at batch"
            f" {offline.batch_size} (server mean batch {saturated.server_mean_batch_size:.2f})",
        ),
        Verdict(
            "light load",
            slowdown,
            "<= 1.2",
            slowdown <= 1.2,
            f"median {lone.server_ms:.1f} ms per lone request vs {lone.engine_ms:.1f} ms per sentence in the engine,"
            f" alternating, {lone.requests} sentences",
        ),
        Verdict(
            "memory",
            growth,
            "0.95 to 1.05",
            0.95 <= growth <= 1.05,
            f"RSS {end:.1f} MiB after {saturated.requests} requests vs {reference:.1f} MiB after"
            f" {plan.memory_baseline} (medians of the samples over the last {plan.memory_baseline} requests)",
        ),
    ]


def rss_after(samples: Sequence[tuple[int, float]], requests: int, window: int) -> float:
    """The median of the RSS samples (requests answered, MiB) taken over the `window` requests up to `requests`."""
    return statistics.median(mib for n, mib in samples if requests - window < n <= requests)


def markdown(
    plan: Plan, report: Mapping[str, Any], runs: Mapping[str, Run], offline: Offline, verdicts: Sequence[Verdict]
) -> str:
    """The report: what ran, on what, the verdicts, the offline engine and the load runs."""
    machine = "\n".join(f"- {key}: {value}" for key, value in report["machine"].items() if key != "summary")
    rows = "\n".join(
        f"| {v.target} | {v.status} | {v.measured:.3f} | {v.requirement} | {v.numbers} |" for v in verdicts
    )
    tables = "\n\n".join(
        f"### {r.title}\n\n```\n{r.command}\n```\n\n{markdown_table([r.result])}" for r in runs.values()
    )
    source = plan.text_file or "Multi30k test"
    return (
        f"# Online performance targets\n\n"
        f"Model `{plan.model}` ({offline.variant}), greedy search, one sentence per request, {report['sentences']}"
        f" sentences ({source}); onnxruntime intra_op_threads={plan.intra_op_threads} in the servers and offline."
        f"\n\n```\n{report['command']}\n```\n\n## Machine\n\n{machine}\n\n"
        f"## Targets\n\n| target | verdict | measured | required | numbers |\n|---|---|---:|---|---|\n{rows}\n\n"
        f"## Offline engine\n\n{offline.sentences_per_s:.1f} sentences/s ({offline.target_tokens_per_s:.0f}"
        f" target tokens/s) at batch {offline.batch_size}, greedy with the servers' default repeat guard"
        f" ({SERVER_REPEAT_GUARD}-grams)."
        f"\n\n## Load runs\n\n{tables}\n"
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.targets", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models-root", type=Path, default=Path("models"))
    parser.add_argument("--model", default="en-fr", help="the model folder under --models-root, and its name")
    parser.add_argument("--text-file", type=Path, help="sentences, one a line (default: Multi30k test)")
    parser.add_argument("--output", type=Path, default=Path("results/online"))
    parser.add_argument("--intra-op-threads", type=int, default=Plan.intra_op_threads, help="0: automatic")
    parser.add_argument("--concurrency", type=int, default=Plan.concurrency, help="clients of the saturation runs")
    parser.add_argument("--saturation-requests", type=int, default=Plan.saturation_requests, help="batched run")
    parser.add_argument(
        "--memory-baseline", type=int, default=Plan.memory_baseline, help="requests before the RSS reference"
    )
    parser.add_argument(
        "--memory-samples-every", type=int, default=Plan.memory_samples_every, help="requests between RSS samples"
    )
    parser.add_argument("--unbatched-requests", type=int, default=Plan.unbatched_requests, help="run with batching off")
    parser.add_argument("--light-requests", type=int, default=Plan.light_requests, help="lone requests")
    parser.add_argument("--warmup", type=int, default=Plan.warmup, help="unmeasured requests before each run")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    argv = sys.argv[1:] if argv is None else list(argv)
    plan = Plan(**{f.name: getattr(args, f.name) for f in fields(Plan)})
    if plan.saturation_requests < plan.memory_baseline:
        raise SystemExit("--saturation-requests must be at least --memory-baseline")
    if not 0 < plan.memory_samples_every <= plan.memory_baseline:
        raise SystemExit("--memory-samples-every must be between 1 and --memory-baseline")
    sentences = benchmark_sentences(plan.models_root / plan.model, plan.text_file, CORPUS_SENTENCES)
    model_dir = plan.models_root / plan.model
    variant = read_manifest(model_dir).variant_for(CPU)  # what the server runs on CPU, with its decoder graphs
    engine = Engine.load(model_dir, intra_op_threads=plan.intra_op_threads, variant=variant)
    lone, runs = measure_online(plan, sentences, engine)
    mean_batch = runs["saturated"].result.server_mean_batch_size or 1.0
    offline = measure_offline(engine, variant, sentences, max(1, round(mean_batch)))
    verdicts = judge(lone, runs, offline, plan)
    report = {
        "command": shlex.join(["python", "-m", "bench.targets", *argv]),
        "machine": describe_machine(),
        "plan": asdict(plan),
        "server_settings": plan.settings,
        "sentences": len(sentences),
        "verdicts": [asdict(v) for v in verdicts],
        "lone_requests": asdict(lone),
        "offline": asdict(offline),
        "online": {key: asdict(run) for key, run in runs.items()},
    }
    args.output.mkdir(parents=True, exist_ok=True)
    (args.output / "targets.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    (args.output / "targets.md").write_text(markdown(plan, report, runs, offline, verdicts))
    print("\n".join(v.line() for v in verdicts))
    return 0 if all(v.passed for v in verdicts) else 1


if __name__ == "__main__":
    sys.exit(main())
