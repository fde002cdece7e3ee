"""The text-handling benchmarks end to end on the tiny model and a made-up corpus (behaviour, never speed)."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from bench import text_overhead, text_quality
from tests.support.tiny import sentence_pairs


def write_corpus(directory: Path, split: str, count: int) -> Path:
    """A Multi30k-shaped folder: `split`.en.gz and .fr.gz of the tiny task's sentence pairs."""
    pairs = sentence_pairs(count, seed=3)
    for side, language in enumerate(("en", "fr")):
        with gzip.open(directory / f"{split}.{language}.gz", "wt", encoding="utf-8") as lines:
            lines.writelines(pair[side] + "\n" for pair in pairs)
    return directory


def test_text_overhead_prints_a_row_per_text(
    tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    corpus = write_corpus(tmp_path, "test_2016_flickr", 1000)
    text_overhead.main(["--model-dir", str(tiny_model_dir), "--corpus-dir", str(corpus), "--repeats", "5"])
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ")]
    assert [row.split(" | ")[0] for row in rows[1:]] == ["| 1 sentence", "| 5-sentence paragraph", "| 1,000 sentences"]


def test_text_quality_prints_casing_and_repeat_guard_figures(
    tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    corpus = write_corpus(tmp_path, "test_2017_flickr", 40)
    text_quality.main(["--model-dir", str(tiny_model_dir), "--corpus-dir", str(corpus), "--sentences", "40"])
    out = capsys.readouterr().out
    assert "ALL CAPS with the casing handling: case-insensitive BLEU" in out
    assert [line.split(" | ")[0] for line in out.splitlines() if line.startswith("| ") and "-gram" in line] == [
        "| 3-grams",
        "| 4-grams",
    ]
