"""The attention-detail graph (explain.onnx): every layer and head, consistent with the decoding graphs and the
PyTorch model, and absent without cost where a model directory lacks it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from model.export import ExplainGraph
from model.model import Transformer
from service.decoding.engine import Engine
from service.decoding.manifest import EXPLAIN_FILE, MANIFEST_FILE, read_manifest
from service.types import DecodeOptions
from tests.support.tiny import source_sentences

TEXTS = [*source_sentences(3, seed=9), ""]
DETAIL = DecodeOptions(beam_size=3, n_best=2, return_attention=True, attention_detail=True)


def test_every_layer_and_head_of_the_best_hypothesis(engine: Engine, torch_model: Transformer) -> None:
    cfg = torch_model.cfg
    translations = engine.translate(TEXTS, DETAIL)
    for translation in translations[:-1]:
        detail = translation.detail
        assert detail is not None
        source, target = len(translation.source_tokens), len(translation.best.tokens) + 1
        assert detail.source_tokens == translation.source_tokens
        assert detail.target_tokens == ["<s>", *translation.best.tokens]
        heads = cfg.n_heads
        assert detail.encoder_self.shape == (cfg.n_encoder_layers, heads, source, source)
        assert detail.decoder_self.shape == (cfg.n_decoder_layers, heads, target, target)
        assert detail.cross.shape == (cfg.n_decoder_layers, heads, target, source)
        for weights in (detail.encoder_self, detail.decoder_self, detail.cross):
            np.testing.assert_allclose(weights.sum(axis=-1), 1.0, atol=1e-5)
        assert not np.triu(detail.decoder_self, k=1).any()  # the future is hidden: exactly 0
        # The served alignment (last layer, mean over heads, at the step that wrote each token) is the same
        # attention as the detail's: the incremental decoder and the one-pass graph agree.
        averaged = detail.cross[engine.manifest.attention.layer].mean(axis=0)[: target - 1]
        np.testing.assert_allclose(averaged, translation.best.attention, atol=1e-5)
    assert translations[-1].detail is None


def test_the_graph_computes_the_pytorch_models_attention(engine: Engine, torch_model: Transformer) -> None:
    [translation] = engine.translate(TEXTS[:1], DETAIL)
    ids = engine._source_ids(TEXTS[0])
    target = [engine.manifest.special_ids.bos, *translation.best.token_ids]
    with torch.no_grad():
        expected = ExplainGraph(torch_model.eval())(torch.tensor([ids]), torch.tensor([target]))
    detail = translation.detail
    assert detail is not None
    for got, want in zip((detail.encoder_self, detail.decoder_self, detail.cross), expected, strict=True):
        np.testing.assert_allclose(got, want.numpy(), atol=1e-5)


def test_requests_without_detail_get_none(engine: Engine) -> None:
    assert all(t.detail is None for t in engine.translate(TEXTS, DecodeOptions(return_attention=True)))


def test_the_manifest_lists_the_graph(tiny_model_dir: Path) -> None:
    manifest = read_manifest(tiny_model_dir)
    assert manifest.explain == EXPLAIN_FILE and EXPLAIN_FILE in manifest.files


def test_a_directory_without_the_graph_says_so(tiny_model_dir: Path, tmp_path: Path) -> None:
    directory = Path(shutil.copytree(tiny_model_dir, tmp_path / "en-fr"))
    (directory / EXPLAIN_FILE).unlink()
    manifest = json.loads((directory / MANIFEST_FILE).read_text())
    del manifest["explain"], manifest["files"][EXPLAIN_FILE]  # as in manifests written before the graph existed
    (directory / MANIFEST_FILE).write_text(json.dumps(manifest))
    engine = Engine.load(directory, intra_op_threads=1, variant="fp32")
    assert not engine.explains
    assert engine.translate(TEXTS[:1], DecodeOptions())[0].detail is None
    with pytest.raises(ValueError, match="en-fr has no attention-detail graph"):
        engine.translate(TEXTS[:1], DETAIL)
