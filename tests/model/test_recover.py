"""Recovering a checkpoint from int8 graphs: exported again, it gives the same int8 graphs and translations."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from model.checkpoint import load_checkpoint
from model.export import export_model
from model.recover import main as recover_main
from model.recover import recover_checkpoint
from service.decoding.engine import Engine
from service.decoding.manifest import read_manifest, write_manifest
from service.types import DecodeOptions
from tests.support.tiny import source_sentences

GRAPHS = ["encoder.int8.onnx", "decoder.int8.onnx"]


@pytest.fixture(scope="module")
def reexported(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model recovered from its int8 graphs, then exported again as int8."""
    directory = tmp_path_factory.mktemp("recovered")
    recovered = recover_checkpoint(tiny_model_dir, directory / "recovered.pt")
    assert recovered.mismatches == 0
    return export_model(directory / "recovered.pt", directory / "en-fr", name="en-fr", version="1", variants=["int8"])


def _initializers(path: Path) -> dict[str, np.ndarray]:
    return {i.name: numpy_helper.to_array(i) for i in onnx.load(path).graph.initializer}


@pytest.mark.parametrize("graph", GRAPHS)
def test_reexport_gives_the_same_int8_weights(tiny_model_dir: Path, reexported: Path, graph: str) -> None:
    original, again = _initializers(tiny_model_dir / graph), _initializers(reexported / graph)
    assert sorted(original) == sorted(again)
    for name, array in original.items():
        assert array.dtype == again[name].dtype and np.array_equal(array, again[name]), name


@pytest.mark.parametrize("beam_size", [1, 4])
def test_reexport_translates_identically(tiny_model_dir: Path, reexported: Path, beam_size: int) -> None:
    texts, options = source_sentences(20, seed=7), DecodeOptions(beam_size=beam_size)
    original = Engine.load(tiny_model_dir, intra_op_threads=1, variant="int8").translate(texts, options)
    again = Engine.load(reexported, intra_op_threads=1, variant="int8").translate(texts, options)
    assert [t.best.token_ids for t in again] == [t.best.token_ids for t in original]
    assert [t.best.score for t in again] == [t.best.score for t in original]


def test_checkpoint_keeps_tokenizer_and_languages(tiny_model_dir: Path, tmp_path: Path) -> None:
    assert recover_main([str(tiny_model_dir), "--output", str(tmp_path / "r.pt")]) == 0
    state = load_checkpoint(tmp_path / "r.pt")
    assert state["tokenizer_model"] == (tiny_model_dir / "tokenizer.model").read_bytes()
    assert (state["source_language"], state["target_language"]) == ("en", "fr")


def test_directory_without_int8_graphs_is_refused(
    tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    copy = tmp_path / "fp32-only"
    shutil.copytree(tiny_model_dir, copy)
    write_manifest(copy, read_manifest(copy).without_variants(["int8", "fp16"]))
    assert recover_main([str(copy), "--output", str(tmp_path / "r.pt")]) == 2
    assert "has no int8 variant" in capsys.readouterr().err
    assert not (tmp_path / "r.pt").exists()
