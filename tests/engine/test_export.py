"""The exported model directory: valid graphs, a complete manifest, and clean failures."""

from __future__ import annotations

import json
from pathlib import Path

import onnx
import pytest
import torch

from model import export
from model.checkpoint import CheckpointError, load_checkpoint, model_from_checkpoint
from model.export import ExportError, export_model
from service.decoding.manifest import read_manifest, sha256_file

GRAPHS = [
    "encoder.onnx",
    "decoder.onnx",
    "decoder.step.onnx",
    "encoder.int8.onnx",
    "decoder.int8.onnx",
    "decoder.step.int8.onnx",
]


@pytest.mark.parametrize("name", [*GRAPHS, "encoder.fp16.onnx", "decoder.fp16.onnx"])
def test_graphs_pass_the_onnx_checker(tiny_model_dir: Path, name: str) -> None:
    onnx.checker.check_model(str(tiny_model_dir / name), full_check=True)


def test_decoder_has_dynamic_batch_source_and_cache_axes(tiny_model_dir: Path) -> None:
    graph = onnx.load(tiny_model_dir / "decoder.onnx").graph
    dims = {i.name: [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim] for i in graph.input}
    assert dims["token"] == ["batch", 1]
    assert dims["position"] == []
    assert dims["source_mask"] == ["batch", "source_length"]
    assert dims["memory_key_0"][0::2] == ["batch", "source_length"]
    assert dims["past_value_1"][0::2] == ["batch", "cache_length"]
    assert [o.name for o in graph.output][:3] == ["log_probs", "attention", "present_key_0"]


def test_decoder_step_has_no_runtime_shape_computation(tiny_model_dir: Path) -> None:
    """Constant reshape targets: no Shape nodes left for onnxruntime to run at every step."""
    ops = {node.op_type for node in onnx.load(tiny_model_dir / "decoder.onnx").graph.node}
    assert "Shape" not in ops


def test_manifest_describes_the_directory(tiny_model_dir: Path, tiny_checkpoint: Path) -> None:
    manifest = read_manifest(tiny_model_dir)
    state = load_checkpoint(tiny_checkpoint)
    assert (manifest.name, manifest.version) == ("en-fr", "1")
    assert (manifest.source_language, manifest.target_language) == ("en", "fr")
    assert manifest.vocab_size == state["model_config"]["vocab_size"]
    assert (manifest.special_ids.pad, manifest.special_ids.bos, manifest.special_ids.eos) == (0, 2, 3)
    assert manifest.attention.layer == state["model_config"]["n_decoder_layers"] - 1
    assert manifest.scores == state["metrics"]
    assert manifest.training["checkpoint_sha256"] == sha256_file(tiny_checkpoint)
    assert (manifest.training["data"], manifest.training["step"]) == (state["data"], state["step"])
    assert manifest.training["parameters"] == model_from_checkpoint(state).num_parameters()
    assert set(manifest.libraries) >= {"torch", "onnx", "onnxruntime"}
    assert set(manifest.variants) == {"fp32", "int8", "fp16"}
    interfaces = {name: variant.interface for name, variant in manifest.variants.items()}
    assert interfaces == {"fp32": "inplace", "int8": "inplace", "fp16": "concat"}
    on_disk = sorted(p.name for p in tiny_model_dir.iterdir() if p.name != "manifest.json")
    assert sorted(manifest.files) == on_disk
    assert all(sha256_file(tiny_model_dir / name) == digest for name, digest in manifest.files.items())


def test_missing_checkpoint(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="does not exist"):
        export_model(tmp_path / "none.pt", tmp_path / "out", "x", "1")
    assert not (tmp_path / "out").exists()


def test_unreadable_checkpoint(tmp_path: Path) -> None:
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="could not be read"):
        export_model(tmp_path / "bad.pt", tmp_path / "out", "x", "1")


def test_checkpoint_that_does_not_fit_the_model(tmp_path: Path, tiny_checkpoint: Path) -> None:
    state = load_checkpoint(tiny_checkpoint)
    state["model_config"]["d_model"] *= 2  # a config the weights were not trained with
    torch.save(state, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="does not fit"):
        export_model(tmp_path / "other.pt", tmp_path / "out", "x", "1")


def test_unwritable_output_leaves_nothing(tmp_path: Path, tiny_checkpoint: Path) -> None:
    (tmp_path / "file").write_text("a file where a directory should be")
    with pytest.raises(ExportError, match="cannot write"):
        export_model(tiny_checkpoint, tmp_path / "file" / "en-fr", "x", "1")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_failure_midway_leaves_nothing(tmp_path: Path, tiny_checkpoint: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*args: object) -> None:
        raise RuntimeError("interrupted")

    monkeypatch.setattr(export, "export_graphs", fail)
    with pytest.raises(RuntimeError, match="interrupted"):
        export_model(tiny_checkpoint, tmp_path / "en-fr", "x", "1")
    assert list(tmp_path.iterdir()) == []


def test_existing_output_is_kept_without_overwrite(tmp_path: Path, tiny_checkpoint: Path) -> None:
    (tmp_path / "en-fr").mkdir()
    with pytest.raises(ExportError, match="exists"):
        export_model(tiny_checkpoint, tmp_path / "en-fr", "x", "1")


def test_unknown_variant(tmp_path: Path, tiny_checkpoint: Path) -> None:
    with pytest.raises(ExportError, match="variants"):
        export_model(tiny_checkpoint, tmp_path / "out", "x", "1", variants=("fp32", "int4"))


def test_command_line_reports_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert export.main(["--checkpoint", str(tmp_path / "none.pt"), "--output", str(tmp_path / "out")]) == 1
    assert "does not exist" in capsys.readouterr().err


def test_manifest_is_plain_json(tiny_model_dir: Path) -> None:
    data = json.loads((tiny_model_dir / "manifest.json").read_text())
    assert data["variants"]["int8"] == {
        "encoder": "encoder.int8.onnx",
        "decoder": "decoder.int8.onnx",
        "precision": "int8",
        "step_decoder": "decoder.step.int8.onnx",
    }


def test_export_without_the_step_graph(tmp_path: Path, tiny_checkpoint: Path) -> None:
    """--no-step-decoder writes the concatenating decoder only, as exports did before the in-place graph."""
    output = tmp_path / "en-fr"
    assert export.main(["--checkpoint", str(tiny_checkpoint), "--output", str(output), "--no-step-decoder"]) == 0
    manifest = read_manifest(output)
    assert {v.interface for v in manifest.variants.values()} == {"concat"}
    assert not list(output.glob("decoder.step*"))


def test_overwrite_replaces_a_previous_export(tmp_path: Path, tiny_checkpoint: Path) -> None:
    (tmp_path / "en-fr").mkdir()
    (tmp_path / "en-fr" / "stale.onnx").write_text("from an older export")
    export_model(tiny_checkpoint, tmp_path / "en-fr", "en-fr", "2", variants=("int8",), overwrite=True)
    manifest = read_manifest(tmp_path / "en-fr")
    assert manifest.version == "2"
    assert set(manifest.variants) == {"int8"}
    assert sorted(p.name for p in (tmp_path / "en-fr").iterdir()) == sorted([*manifest.files, "manifest.json"])
    assert [p.name for p in tmp_path.iterdir()] == ["en-fr"]
