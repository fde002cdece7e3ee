"""The shortlist benchmark end to end on the tiny model: BLEU and speed of both settings (behaviour, never speed)."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import pytest

from bench.shortlist_bench import SPLITS, main
from model.shortlist import add_shortlist, build_shortlist
from service.decoding.manifest import read_manifest
from tests.support.tiny import sentence_pairs


def _corpus(directory: Path) -> Path:
    """Tiny test splits in Multi30k's layout (gzipped, one sentence a line)."""
    directory.mkdir()
    for seed, split in enumerate(SPLITS):
        pairs = sentence_pairs(6, seed=40 + seed)
        for language, side in (("en", 0), ("fr", 1)):
            with gzip.open(directory / f"{split}.{language}.gz", "wt") as f:
                f.write("\n".join(pair[side] for pair in pairs) + "\n")
    return directory


@pytest.mark.slow
def test_reports_bleu_and_speed_of_both_settings(
    tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model_dir = shutil.copytree(tiny_model_dir, tmp_path / "en-fr")
    manifest = read_manifest(model_dir)
    ids = [[i] for i in range(4, manifest.vocab_size)]  # each word its own translation, plus the 10 first
    shortlist = build_shortlist(ids, ids, manifest.vocab_size, top_k=5, frequent=10, always=[3])
    add_shortlist(model_dir, shortlist, False, {}, manifest)
    argv = ["--model-dir", str(model_dir), "--corpus", str(_corpus(tmp_path / "corpus"))]
    assert main([*argv, "--sentences", "4", "--rounds", "1"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    speeds = [line for line in lines if "search" in line]
    assert {(s["search"], s["batch"]) for s in speeds} == {(s, b) for s in ("greedy", "beam 4") for b in (1, 32)}
    assert all(s["full vocabulary"] > 0 and s["shortlist"] > 0 for s in speeds)
    scores = [line for line in lines if "bleu" in line]
    assert [s["bleu"] for s in scores] == ["beam 4", "greedy"]
    assert all(set(s[split]) == {"full vocabulary", "shortlist"} for s in scores for split in SPLITS)
