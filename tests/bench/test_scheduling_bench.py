"""The scheduling benchmarks end to end on the tiny model: every scenario runs for both schedulers (behaviour,
never speed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import scheduler_load, scheduling, step_profile
from tests.support.tiny import write_source_sentences


@pytest.mark.slow
def test_both_schedulers_run_every_scenario(
    tiny_model_dir: Path, tiny_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text_file = write_source_sentences(tmp_path / "sentences.txt", 80)
    argv = ["--models-root", str(tiny_model_dir.parent), "--model", tiny_model_dir.name, "--text-file", str(text_file)]
    assert scheduling.main([*argv, "--duration", "0.3", "--checkpoint", str(tiny_checkpoint)]) == 0
    table = capsys.readouterr().out
    assert "| measure | batch | continuous | CTranslate2 offline |" in table
    saturation = next(line for line in table.splitlines() if line.startswith("| saturation_sentences_per_s |"))
    assert all(float(cell) > 0 for cell in saturation.strip(" |").split("|")[1:])
    for measure in ("lone_s", "beside_heavy_s", "after_cancel_s", "mixed_single_p99_s", "saturation_sentences_per_s"):
        assert f"| {measure} |" in table
    assert "| sigterm_answered |" in table and "| sigterm_unavailable |" in table


def test_step_profile_reports_every_case(
    tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text_file = write_source_sentences(tmp_path / "sentences.txt", 64)
    assert step_profile.main(["--model-dir", str(tiny_model_dir), "--text-file", str(text_file), "--repeats", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    rows = [line.split("|") for line in lines if line.startswith(("| inplace", "| concat"))]
    measured = [(cells[1].strip(), int(cells[2]), int(cells[3])) for cells in rows]
    assert measured == [(interface, *case) for case in step_profile.CASES for interface in ("inplace", "concat")]


def test_scheduler_load_reports_every_setting(
    tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text_file = write_source_sentences(tmp_path / "sentences.txt", 64)
    argv = ["--model-dir", str(tiny_model_dir), "--text-file", str(text_file), "--duration", "0.2", "--rounds", "1"]
    assert scheduler_load.main([*argv, "--interfaces", "auto,concat", "--workers", "1,2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    rows = [line.split("|")[1].strip() for line in lines if line.startswith(("| auto", "| concat"))]
    assert rows == ["auto, 1", "auto, 2", "concat, 1", "concat, 2"]
    saturation = [float(line.split("|")[2]) for line in lines if line.startswith(("| auto", "| concat"))]
    assert all(value > 0 for value in saturation)
