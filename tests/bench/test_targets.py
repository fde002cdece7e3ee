"""The targets runner: its verdicts on given numbers, and a tiny end-to-end run (behaviour, never speed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.load import LevelResult
from bench.targets import LoneRequests, Offline, Plan, Run, judge, main, rss_after
from tests.support.tiny import write_source_sentences


def level(sentences_per_s: float, p50_ms: float = 10.0, rss: list[tuple[int, float]] | None = None) -> LevelResult:
    requests = rss[-1][0] if rss else 100
    return LevelResult(
        concurrency=64,
        batch_size=1,
        requests=requests,
        sentences=requests,
        target_tokens=10 * requests,
        elapsed_s=requests / sentences_per_s,
        requests_per_s=sentences_per_s,
        sentences_per_s=sentences_per_s,
        target_tokens_per_s=10 * sentences_per_s,
        latency_ms={"p50": p50_ms, "p95": p50_ms, "p99": p50_ms, "max": p50_ms, "mean": p50_ms},
        errors={},
        server_mean_batch_size=30.6,
        server_busy=1.0,
        server_rss_mib=rss[-1][1] if rss else None,
        rss_mib_by_requests=rss or [],
    )


def runs(batched: float, unbatched: float, rss_end: float) -> dict[str, Run]:
    rss = [(1000, 200.0), (2000, 205.0), (3000, rss_end)]
    results = {"saturated": level(batched, rss=rss), "unbatched": level(unbatched)}
    return {key: Run(key, "python -m bench.load ...", result) for key, result in results.items()}


def lone(server_ms: float) -> LoneRequests:
    return LoneRequests(300, server_ms, engine_ms=20.0)


PLAN = Plan(Path("models"), "en-fr", saturation_requests=3000)
OFFLINE = Offline("int8", 31, sentences_per_s=100.0, target_tokens_per_s=1000.0)


def test_every_target_passes_on_its_boundary() -> None:
    verdicts = judge(lone(24.0), runs(batched=85.0, unbatched=21.25, rss_end=210.0), OFFLINE, PLAN)
    assert [v.target for v in verdicts] == ["dynamic batching", "service overhead", "light load", "memory"]
    assert [v.measured for v in verdicts] == pytest.approx([4.0, 0.85, 1.2, 1.05])
    assert all(v.passed for v in verdicts)
    assert verdicts[3].numbers == (
        "RSS 210.0 MiB after 3000 requests vs 200.0 MiB after 1000 (medians of the samples over the last 1000 requests)"
    )


def test_every_target_fails_past_its_bound() -> None:
    verdicts = judge(lone(24.5), runs(batched=84.0, unbatched=21.25, rss_end=211.0), OFFLINE, PLAN)
    assert [v.status for v in verdicts] == ["FAIL"] * 4
    assert verdicts[0].line().startswith("FAIL  dynamic batching: 3.953 (>= 4); 84.0 sentences/s batched")
    shrunk = judge(lone(20.0), runs(batched=85.0, unbatched=20.0, rss_end=189.0), OFFLINE, PLAN)
    assert [v.passed for v in shrunk] == [True, True, True, False]


def test_memory_compares_medians_so_swings_cancel_and_growth_shows() -> None:
    swinging = [(n, 160.0 if n % 200 else 170.0) for n in range(100, 3001, 100)]  # +-3% from sample to sample
    assert rss_after(swinging, 1000, 1000) == rss_after(swinging, 3000, 1000) == 165.0
    growing = [(n, 160.0 + n / 100) for n in range(100, 3001, 100)]  # a leak: 1 MiB per 100 requests
    assert rss_after(growing, 1000, 1000) == 165.5 and rss_after(growing, 3000, 1000) == 185.5


def test_load_command_repeats_a_run_alone() -> None:
    command = PLAN.load_command({"MT_INTRA_OP_THREADS": "1", "MT_MAX_BATCH_SIZE": "1"}, 64, 2000)
    assert command == (
        "python -m bench.load --models-root models --model en-fr --concurrency 64 --requests 2000 --warmup 200"
        " --server-env MT_INTRA_OP_THREADS=1 MT_MAX_BATCH_SIZE=1"
    )


@pytest.mark.slow
@pytest.mark.timeout(300, func_only=True)  # the tiny model fixture may take longer
def test_tiny_run_writes_verdicts_and_reports(tiny_model_dir: Path, tmp_path: Path) -> None:
    text_file = write_source_sentences(tmp_path / "sentences.txt", 40)
    output = tmp_path / "results"
    argv = ["--models-root", str(tiny_model_dir.parent), "--model", "en-fr", "--text-file", str(text_file)]
    argv += ["--saturation-requests", "80", "--memory-baseline", "40", "--memory-samples-every", "20"]
    argv += ["--unbatched-requests", "20"]
    argv += ["--light-requests", "10", "--warmup", "4", "--output", str(output)]
    assert main(argv) in (0, 1)  # whether the tiny model meets the targets here is not the point

    report = json.loads((output / "targets.json").read_text())
    assert [v["target"] for v in report["verdicts"]] == ["dynamic batching", "service overhead", "light load", "memory"]
    assert report["server_settings"] == {"MT_INTRA_OP_THREADS": "1"}
    online = report["online"]
    assert [online[k]["result"]["requests"] for k in ("saturated", "unbatched")] == [80, 20]
    assert report["lone_requests"]["requests"] == 10
    assert all(not online[k]["result"]["errors"] for k in online)
    assert online["unbatched"]["result"]["server_mean_batch_size"] == 1.0
    assert [n for n, _ in online["saturated"]["result"]["rss_mib_by_requests"]] == [20, 40, 60, 80]
    assert report["offline"]["variant"] == "int8" and report["offline"]["batch_size"] >= 1
    text = (output / "targets.md").read_text()
    assert report["machine"]["cpu"] in text and report["command"] in text
    assert text.count("python -m bench.load") == 2  # one command per load run
    assert text.count(f"--text-file {text_file}") == 1 + 2
