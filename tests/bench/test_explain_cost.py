"""The attention-detail cost benchmark end to end on the tiny model (behaviour, never speed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.explain_cost import main
from tests.support.tiny import write_source_sentences


def test_tiny_run_times_every_kind_of_call(
    tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text_file = write_source_sentences(tmp_path / "sentences.txt", 4)
    assert main(["--model-dir", str(tiny_model_dir), "--text-file", str(text_file)]) == 0
    printed = capsys.readouterr().out
    for line in ("4 sentences", "without the graph", "with the graph, not asked", "asked", "explain.onnx"):
        assert line in printed
