"""The load generator: a bounded run against a server it starts itself (tiny model), and its parsing helpers.

These check behaviour and report contents, never speed.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from prometheus_client import generate_latest

from bench.load import (
    BATCH_METRIC,
    LoadSpec,
    build_requests,
    histogram_delta,
    histogram_totals,
    latency_summary,
    main,
    parse_env,
)
from service.telemetry.metrics import Metrics
from tests.support.tiny import write_source_sentences


@pytest.mark.slow
@pytest.mark.timeout(180, func_only=True)  # the tiny model fixture may take longer
def test_bounded_run_against_a_started_server(tiny_model_dir: Path, tmp_path: Path) -> None:
    text_file = write_source_sentences(tmp_path / "sentences.txt", 30)
    output = tmp_path / "results"
    argv = ["--models-root", str(tiny_model_dir.parent), "--text-file", str(text_file)]
    argv += ["--concurrency", "1", "4", "--requests", "20", "--batch-size", "2", "--warmup", "2"]
    argv += ["--server-env", "MT_INTRA_OP_THREADS=1", "--output", str(output), "--name", "tiny", "--no-progress"]
    assert main(argv) == 0

    report = json.loads((output / "tiny.json").read_text())
    assert report["server_settings"]["MT_INTRA_OP_THREADS"] == "1"
    assert report["sentences"] == 30
    levels = report["levels"]
    assert [level["concurrency"] for level in levels] == [1, 4]
    for level in levels:
        assert level["errors"] == {}
        assert (level["requests"], level["sentences"]) == (20, 40)
        assert level["target_tokens"] > 0 and level["sentences_per_s"] > 0
        latency = level["latency_ms"]
        assert 0 < latency["p50"] <= latency["p95"] <= latency["p99"] <= latency["max"]
        assert level["server_mean_batch_size"] >= 1
        assert level["server_busy"] > 0
        assert level["server_rss_mib"] > 0
        assert level["rss_mib_by_requests"][-1] == [20, level["server_rss_mib"]]
    table = (output / "tiny.md").read_text()
    assert "MT_INTRA_OP_THREADS=1" in table
    assert len([line for line in table.splitlines() if line.startswith("| ")]) == 1 + len(levels)
    assert (output / "tiny.png").read_bytes().startswith(b"\x89PNG")


def test_latency_summary_interpolates_percentiles_in_milliseconds() -> None:
    summary = latency_summary([i / 1000 for i in range(100, 0, -1)])  # 1..100 ms, unordered
    assert summary == pytest.approx({"p50": 50.5, "p95": 95.05, "p99": 99.01, "max": 100.0, "mean": 50.5})
    assert latency_summary([0.004]) == pytest.approx(dict.fromkeys(("p50", "p95", "p99", "max", "mean"), 4.0))
    assert latency_summary([]) == {}


def test_histogram_totals_add_up_every_label_set() -> None:
    metrics = Metrics()
    before = generate_latest(metrics.registry).decode()
    for model, size in (("en-fr", 3), ("en-fr", 5), ("en-de", 8)):
        metrics.batch_sentences.labels(model).observe(size)
    after = generate_latest(metrics.registry).decode()
    assert histogram_totals(after, BATCH_METRIC) == (16.0, 3.0)
    assert histogram_totals(after, "mt_no_such_histogram") == (0.0, 0.0)
    assert histogram_delta(before, after, BATCH_METRIC) == (16.0, 3.0)
    assert histogram_delta(None, after, BATCH_METRIC) is None


def test_requests_cover_every_sentence_in_batches() -> None:
    requests = build_requests(["a", "b", "c", "d", "e"], LoadSpec(batch_size=2, beam_size=4, model="en-fr"))
    assert [list(r.texts) for r in requests] == [["a", "b"], ["c", "d"], ["e", "a"]]
    assert {(r.beam_size, r.model) for r in requests} == {(4, "en-fr")}


def test_load_spec_needs_a_bound() -> None:
    with pytest.raises(ValueError, match="requests or a duration"):
        LoadSpec(requests=None, duration_s=None)


def test_server_env_items() -> None:
    assert parse_env(["MT_MAX_BATCH_SIZE=1", "MT_AUTH_TOKENS=a=b"]) == {
        "MT_MAX_BATCH_SIZE": "1",
        "MT_AUTH_TOKENS": "a=b",
    }
    with pytest.raises(SystemExit, match="KEY=VALUE"):
        parse_env(["MT_MAX_BATCH_SIZE"])
