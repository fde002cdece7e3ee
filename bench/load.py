"""Online load generator: concurrent gRPC clients against the translation service.

    python -m bench.load --models-root models --concurrency 1 8 32 64 --requests 500
    python -m bench.load --address localhost:50051 --metrics-url http://localhost:9400/metrics --duration 30

At each concurrency level, N clients each send Translate requests of --batch-size sentences one after the
other (all clients share one channel) until the level's request count or duration is reached. Reported per
level: requests/s, sentences/s, target tokens/s, latency percentiles, errors by status code, the server's
mean batch size and model busy time (from its /metrics) and, when this tool started the server
(--models-root), the server's resident memory.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import shlex
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import grpc
import numpy as np
from prometheus_client.parser import text_string_to_metric_families
from tqdm import tqdm

from bench.machine import corpus_sentences, describe_machine, read_sentences
from bench.server import ServerProcess, rss_bytes
from service.api.translation.v1 import translation_pb2 as pb
from service.api.translation.v1 import translation_pb2_grpc as pb_grpc
from service.client import TranslatorClient

CORPUS_SENTENCES = 1000  # the whole Multi30k test split
BATCH_METRIC = "mt_batch_size_sentences"
INFERENCE_METRIC = "mt_batch_inference_seconds"
PERCENTILES = (50, 95, 99)
MiB = 1024 * 1024


@dataclass(frozen=True)
class Target:
    """Where the load goes, and what can be observed of the server."""

    address: str
    metrics_url: str | None = None
    pid: int | None = None  # known when this process started the server

    @classmethod
    def of(cls, server: ServerProcess) -> Target:
        return cls(server.address, server.metrics_url, server.pid)


# --- server metrics --------------------------------------------------------------------------------------


def histogram_totals(exposition: str, name: str) -> tuple[float, float]:
    """Sum and count of histogram `name` over all its label sets, from Prometheus text exposition."""
    total = count = 0.0
    for family in text_string_to_metric_families(exposition):
        if family.name != name:
            continue
        for sample in family.samples:
            if sample.name == f"{name}_sum":
                total += sample.value
            elif sample.name == f"{name}_count":
                count += sample.value
    return total, count


def scrape(url: str | None) -> str | None:
    """The text of a /metrics endpoint, or None without one."""
    if url is None:
        return None
    with urllib.request.urlopen(url, timeout=10) as response:
        text: str = response.read().decode()
        return text


def histogram_delta(before: str | None, after: str | None, name: str) -> tuple[float, float] | None:
    """Growth of histogram `name`'s sum and count between two scrapes; None without them."""
    if before is None or after is None:
        return None
    (sum0, count0), (sum1, count1) = histogram_totals(before, name), histogram_totals(after, name)
    return sum1 - sum0, count1 - count0


# --- load ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LoadSpec:
    """What every client sends, and when a level ends (the first bound reached; at least one is set)."""

    batch_size: int = 1
    requests: int | None = 200  # per level, over all clients
    duration_s: float | None = None
    beam_size: int = 1
    model: str = ""  # "" = the server's default model
    warmup: int = 0  # requests per level before measuring
    timeout_s: float = 60.0
    rss_every: int = 1000  # sample the server's memory every this many answered requests

    def __post_init__(self) -> None:
        if self.requests is None and self.duration_s is None:
            raise ValueError("a load level needs a number of requests or a duration")


@dataclass
class LevelResult:
    """What one concurrency level measured."""

    concurrency: int
    batch_size: int
    requests: int  # answered without error
    sentences: int
    target_tokens: int
    elapsed_s: float
    requests_per_s: float
    sentences_per_s: float
    target_tokens_per_s: float
    latency_ms: dict[str, float]  # p50, p95, p99, max, mean; empty without an answered request
    errors: dict[str, int]  # gRPC status name -> count
    server_mean_batch_size: float | None
    server_busy: float | None  # share of the run the model spent computing batches
    server_rss_mib: float | None  # at the end of the level
    rss_mib_by_requests: list[tuple[int, float]] = field(default_factory=list)


def latency_summary(seconds: Sequence[float]) -> dict[str, float]:
    """Latency percentiles (linear interpolation), max and mean, in milliseconds; {} without samples."""
    if not seconds:
        return {}
    ms = np.asarray(seconds, dtype=np.float64) * 1000
    summary = {f"p{q}": float(v) for q, v in zip(PERCENTILES, np.percentile(ms, PERCENTILES), strict=True)}
    return summary | {"max": float(ms.max()), "mean": float(ms.mean())}


def build_requests(sentences: Sequence[str], spec: LoadSpec) -> list[pb.TranslateRequest]:
    """Requests of `spec.batch_size` consecutive sentences, wrapping around, covering every sentence once."""
    count = -(-len(sentences) // spec.batch_size)
    texts = itertools.cycle(sentences)
    return [
        pb.TranslateRequest(
            texts=list(itertools.islice(texts, spec.batch_size)), model=spec.model, beam_size=spec.beam_size
        )
        for _ in range(count)
    ]


class _Budget:
    """Hands out permission to send, until the request count or the end time is reached."""

    def __init__(self, requests: int | None, duration_s: float | None) -> None:
        self.left = requests
        self.end = None if duration_s is None else time.monotonic() + duration_s

    def take(self) -> bool:
        if self.end is not None and time.monotonic() >= self.end:
            return False
        if self.left is not None:
            if self.left <= 0:
                return False
            self.left -= 1
        return True


@dataclass
class _Tally:
    """The outcomes of one level's requests; samples the server's memory as answers come in."""

    pid: int | None
    rss_every: int
    progress: tqdm[Any] | None = None
    latencies: list[float] = field(default_factory=list)
    sentences: int = 0
    tokens: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    rss: list[tuple[int, float]] = field(default_factory=list)

    def answered(self, seconds: float, response: pb.TranslateResponse) -> None:
        self.latencies.append(seconds)
        self.sentences += len(response.translations)
        self.tokens += sum(len(t.hypotheses[0].tokens) for t in response.translations if t.hypotheses)
        if len(self.latencies) % self.rss_every == 0:
            self.sample_rss()
        if self.progress is not None:
            self.progress.update()

    def failed(self, code: grpc.StatusCode) -> None:
        self.errors[code.name] += 1
        if self.progress is not None:
            self.progress.update()

    def sample_rss(self) -> float | None:
        """The server's memory now (MiB), recorded against the answered requests; None without its pid."""
        if self.pid is None:
            return None
        mib = rss_bytes(self.pid) / MiB
        if not self.rss or self.rss[-1][0] != len(self.latencies):
            self.rss.append((len(self.latencies), mib))
        return mib


async def _client(
    stub: pb_grpc.TranslatorStub,
    requests: Iterator[pb.TranslateRequest],
    budget: _Budget,
    tally: _Tally,
    timeout_s: float,
) -> None:
    """One client: a request, wait for its answer, the next one."""
    while budget.take():
        request = next(requests)
        start = time.perf_counter()
        try:
            response = await stub.Translate(request, timeout=timeout_s)
        except grpc.aio.AioRpcError as exc:
            tally.failed(exc.code())
        else:
            tally.answered(time.perf_counter() - start, response)


async def _drive(
    stub: pb_grpc.TranslatorStub,
    requests: Iterator[pb.TranslateRequest],
    concurrency: int,
    budget: _Budget,
    tally: _Tally,
    timeout_s: float,
) -> float:
    """Runs `concurrency` clients until the budget is spent; returns the elapsed seconds."""
    start = time.perf_counter()
    await asyncio.gather(*(_client(stub, requests, budget, tally, timeout_s) for _ in range(concurrency)))
    return time.perf_counter() - start


async def run_level(
    stub: pb_grpc.TranslatorStub,
    target: Target,
    requests: Sequence[pb.TranslateRequest],
    spec: LoadSpec,
    concurrency: int,
    progress: bool = True,
) -> LevelResult:
    """Warms up, then measures one concurrency level."""
    cycle = itertools.cycle(requests)
    if spec.warmup:
        await _drive(stub, cycle, concurrency, _Budget(spec.warmup, None), _Tally(None, spec.rss_every), spec.timeout_s)
    before = scrape(target.metrics_url)
    bar = tqdm(
        total=spec.requests, desc=f"{concurrency} clients", unit="req", leave=False, mininterval=1, disable=not progress
    )
    tally = _Tally(target.pid, spec.rss_every, bar)
    with bar:
        elapsed = await _drive(stub, cycle, concurrency, _Budget(spec.requests, spec.duration_s), tally, spec.timeout_s)
    after = scrape(target.metrics_url)
    batches = histogram_delta(before, after, BATCH_METRIC)
    inference = histogram_delta(before, after, INFERENCE_METRIC)
    answered = len(tally.latencies)
    return LevelResult(
        concurrency=concurrency,
        batch_size=spec.batch_size,
        requests=answered,
        sentences=tally.sentences,
        target_tokens=tally.tokens,
        elapsed_s=elapsed,
        requests_per_s=answered / elapsed,
        sentences_per_s=tally.sentences / elapsed,
        target_tokens_per_s=tally.tokens / elapsed,
        latency_ms=latency_summary(tally.latencies),
        errors=dict(tally.errors),
        server_mean_batch_size=batches[0] / batches[1] if batches and batches[1] else None,
        server_busy=inference[0] / elapsed if inference else None,
        server_rss_mib=tally.sample_rss(),
        rss_mib_by_requests=tally.rss,
    )


async def run_levels(
    target: Target,
    sentences: Sequence[str],
    spec: LoadSpec,
    levels: Sequence[int],
    progress: bool = True,
) -> list[LevelResult]:
    """Measures each concurrency level in turn on one channel, printing a line per level."""
    requests = build_requests(sentences, spec)
    results = []
    async with grpc.aio.insecure_channel(target.address) as channel:
        stub = pb_grpc.TranslatorStub(channel)
        for concurrency in levels:
            result = await run_level(stub, target, requests, spec, concurrency, progress)
            print(describe_level(result), file=sys.stderr, flush=True)
            results.append(result)
    return results


# --- sentences -------------------------------------------------------------------------------------------


def load_sentences(address: str, model: str = "", text_file: Path | None = None) -> list[str]:
    """The sentences of `text_file`, else the Multi30k test set in the model's source language."""
    if text_file is not None:
        return read_sentences(text_file)
    with TranslatorClient(address) as client:
        models = client.list_models()
    info = next((m for m in models if m.name == model), None) if model else models[0]
    if info is None:
        raise SystemExit(f"the server has no model {model!r}; it has {', '.join(m.name for m in models)}")
    return corpus_sentences(info.source_language, CORPUS_SENTENCES)


# --- reports ---------------------------------------------------------------------------------------------


def describe_level(r: LevelResult) -> str:
    """A one-line summary of a level."""
    p50, p99 = (r.latency_ms.get(k, float("nan")) for k in ("p50", "p99"))
    errors = sum(r.errors.values())
    return (
        f"{r.concurrency:>4} clients: {r.requests_per_s:8.1f} req/s {r.sentences_per_s:8.1f} sentences/s"
        f"  p50 {p50:8.1f} ms  p99 {p99:8.1f} ms  errors {errors}  mean batch {_fmt(r.server_mean_batch_size, 1)}"
    )


def _fmt(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def markdown_table(results: Sequence[LevelResult]) -> str:
    lines = [
        "| clients | batch | requests | errors | req/s | sentences/s | target tok/s | p50 ms | p95 ms | p99 ms"
        " | max ms | server mean batch | model busy | server RSS MiB |",
        "|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        errors = ", ".join(f"{code} {n}" for code, n in sorted(r.errors.items())) or "0"
        latency = " | ".join(_fmt(r.latency_ms.get(k), 1) for k in ("p50", "p95", "p99", "max"))
        busy = "-" if r.server_busy is None else f"{r.server_busy:.0%}"
        lines.append(
            f"| {r.concurrency} | {r.batch_size} | {r.requests} | {errors} | {r.requests_per_s:.1f}"
            f" | {r.sentences_per_s:.1f} | {r.target_tokens_per_s:.0f} | {latency}"
            f" | {_fmt(r.server_mean_batch_size, 2)} | {busy} | {_fmt(r.server_rss_mib, 0)} |"
        )
    return "\n".join(lines)


def plot(results: Sequence[LevelResult], path: Path, title: str) -> None:
    """p50 and p99 latency against sentences/s, one point per concurrency level."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    measured = [r for r in results if r.latency_ms]
    throughput = [r.sentences_per_s for r in measured]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for key in ("p50", "p99"):
        ax.plot(throughput, [r.latency_ms[key] for r in measured], marker="o", label=key)
    for r in measured:
        ax.annotate(
            f"{r.concurrency}", (r.sentences_per_s, r.latency_ms["p99"]), textcoords="offset points", xytext=(4, 4)
        )
    ax.set(title=title, xlabel="sentences / s", ylabel="latency (ms)", yscale="log")
    plain = FuncFormatter(lambda value, _: f"{value:g}")
    ax.yaxis.set_major_formatter(plain)
    ax.yaxis.set_minor_formatter(plain)
    ax.legend(title="latency (labels: clients)")
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_report(output: Path, stem: str, report: Mapping[str, Any], results: Sequence[LevelResult]) -> Path:
    """`stem`.json (report and levels), `stem`.md and `stem`.png under `output`; returns the markdown path."""
    output.mkdir(parents=True, exist_ok=True)
    payload = {**report, "levels": [asdict(r) for r in results]}
    (output / f"{stem}.json").write_text(json.dumps(payload, indent=2) + "\n")
    settings = ", ".join(f"{k}={v}" for k, v in report.get("server_settings", {}).items()) or "as configured"
    markdown = (
        f"# Load: {report['command']}\n\n{report['machine']['summary']}\n\nServer settings: {settings}\n\n"
        f"{markdown_table(results)}\n"
    )
    (output / f"{stem}.md").write_text(markdown)
    title = f"latency against throughput, {results[0].batch_size} sentence(s) per request" if results else ""
    plot(results, output / f"{stem}.png", title)
    return output / f"{stem}.md"


# --- command line ----------------------------------------------------------------------------------------


def parse_env(items: Sequence[str]) -> dict[str, str]:
    """KEY=VALUE items as a mapping."""
    pairs = [item.partition("=") for item in items]
    bad = [item for item, (_, sep, _) in zip(items, pairs, strict=True) if not sep]
    if bad:
        raise SystemExit(f"--server-env takes KEY=VALUE items, not {', '.join(bad)}")
    return {key: value for key, _, value in pairs}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.load", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--address", help="host:port of a running server")
    where.add_argument("--models-root", type=Path, help="start `python -m service` on these models, then stop it")
    parser.add_argument("--metrics-url", help="the running server's /metrics (with --address)")
    parser.add_argument(
        "--server-env", nargs="+", default=[], metavar="KEY=VALUE", help="settings of the started server"
    )
    parser.add_argument("--model", default="", help="model name (default: the server's default)")
    parser.add_argument("--text-file", type=Path, help="sentences, one a line (default: Multi30k test)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32, 64], help="levels: clients")
    parser.add_argument("--batch-size", type=int, default=1, help="sentences per request")
    parser.add_argument("--requests", type=int, help="requests per level (default 200 without --duration)")
    parser.add_argument("--duration", type=float, help="seconds per level")
    parser.add_argument("--beam-size", type=int, default=1)
    parser.add_argument("--warmup", type=int, default=20, help="unmeasured requests before each level")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per request")
    parser.add_argument("--output", type=Path, default=Path("results/online"), help="folder of the reports")
    parser.add_argument("--name", default="load", help="file name of the reports, without extension")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    argv = sys.argv[1:] if argv is None else list(argv)
    requests = 200 if args.requests is None and args.duration is None else args.requests
    spec = LoadSpec(args.batch_size, requests, args.duration, args.beam_size, args.model, args.warmup, args.timeout)
    with contextlib.ExitStack() as stack:
        if args.models_root is not None:
            server = stack.enter_context(ServerProcess(args.models_root, parse_env(args.server_env)))
            target, settings = Target.of(server), server.settings
        else:
            target, settings = Target(args.address, args.metrics_url), {}
        sentences = load_sentences(target.address, args.model, args.text_file)
        results = asyncio.run(run_levels(target, sentences, spec, args.concurrency, not args.no_progress))
    report = {
        "command": shlex.join(["python", "-m", "bench.load", *argv]),
        "machine": describe_machine(),
        "server_settings": settings,
        "sentences": len(sentences),
        "load": asdict(spec),
    }
    print(write_report(args.output, args.name, report, results).read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
