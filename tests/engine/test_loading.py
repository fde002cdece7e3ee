"""Loading a model directory: integrity checks, variants, provider fallback, and no torch on the serving side."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from service.decoding.engine import Engine, ModelLoadError
from service.types import DecodeOptions
from tests.support.tiny import source_sentences


@pytest.fixture
def copy(tiny_model_dir: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(tiny_model_dir, tmp_path / "en-fr"))


def load(tiny_model_dir: Path, **kwargs: object) -> Engine:
    return Engine.load(tiny_model_dir, intra_op_threads=1, **kwargs)  # type: ignore[arg-type]


def test_modified_file_is_refused(copy: Path) -> None:
    data = bytearray((copy / "decoder.int8.onnx").read_bytes())
    data[-1] ^= 1
    (copy / "decoder.int8.onnx").write_bytes(bytes(data))
    with pytest.raises(ModelLoadError, match=r"decoder\.int8\.onnx does not match its sha256"):
        load(copy, variant="fp32")


def test_missing_file_is_refused(copy: Path) -> None:
    (copy / "tokenizer.model").unlink()
    with pytest.raises(ModelLoadError, match=r"tokenizer\.model is missing"):
        load(copy)


def test_missing_manifest_is_refused(copy: Path) -> None:
    (copy / "manifest.json").unlink()
    with pytest.raises(ModelLoadError, match="manifest.json is missing"):
        load(copy)


def test_malformed_manifest_is_refused(copy: Path) -> None:
    manifest = json.loads((copy / "manifest.json").read_text())
    del manifest["special_ids"]
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelLoadError, match="malformed.*special_ids"):
        load(copy)


def test_unknown_variant_is_refused(tiny_model_dir: Path) -> None:
    with pytest.raises(ModelLoadError, match="no variant 'int4'"):
        load(tiny_model_dir, variant="int4")


def test_default_variant_on_cpu_is_int8(tiny_model_dir: Path, engine: Engine) -> None:
    """int8 translates like fp32 of the same weights: measured 50 of 50 alike (Intel Xeon); rounding may flip a few."""
    int8 = load(tiny_model_dir)
    assert int8.variant == "int8"
    sources, options = source_sentences(50, seed=9), DecodeOptions(beam_size=2)
    pairs = zip(int8.translate(sources, options), engine.translate(sources, options), strict=True)
    alike = [a.best.text == b.best.text for a, b in pairs]
    assert sum(alike) >= 40, f"int8 and fp32 agree on {sum(alike)} of 50 sentences"


def test_fp16_variant_runs_with_fp16_caches(tiny_model_dir: Path) -> None:
    """fp16 is meant for CUDA; on CPU onnxruntime runs it through casts, which is enough to check it."""
    fp16, fp32 = load(tiny_model_dir, variant="fp16"), load(tiny_model_dir, variant="fp32", interface="concat")
    assert fp16.interface == "concat"  # fp16 has no in-place step graph
    sources = [[5, 9, 12, 3], [7, 3]]
    decoder, reference = fp16.encode(sources, return_attention=True), fp32.encode(sources, return_attention=True)
    tokens = np.array([2, 2])
    for position in range(4):
        log_probs, attention = decoder.step(tokens, position)
        expected, expected_attention = reference.step(tokens, position)
        assert attention is not None and expected_attention is not None
        assert log_probs.dtype == attention.dtype == np.float32
        np.testing.assert_allclose(log_probs, expected, atol=0.05)
        np.testing.assert_allclose(attention, expected_attention, atol=0.01)
        tokens = expected.argmax(axis=1)


@pytest.mark.skipif("CUDAExecutionProvider" in ort.get_available_providers(), reason="CUDA is available here")
def test_cuda_falls_back_to_cpu_with_a_warning(tiny_model_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="service.decoding.engine"):
        engine = load(tiny_model_dir, providers=("CUDAExecutionProvider", "CPUExecutionProvider"), variant="fp32")
    assert engine.provider == "CPUExecutionProvider"
    assert "asked for CUDAExecutionProvider" in caplog.text
    assert engine.translate(["cat dog"], DecodeOptions())[0].best.token_ids


def test_serving_code_never_imports_torch() -> None:
    code = "import service.decoding.engine, sys; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[2])
