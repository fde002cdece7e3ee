"""Quality gate of the bundled models (models/*/): each still scores what its manifest records, and its card says so.

The BLEU check translates test_2016_flickr through the engine with the variant it serves on CPU (int8) and each
decoding the manifest records (greedy and beam 4: about a minute each on two cores), with the evaluation code
the pipeline used, and fails on a drop of more than MAX_DROP BLEU.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from model.card import CARD_FILE, GATE_SPLIT, render_card
from model.config import PROJECT_ROOT
from model.evaluate import Decoding, engine_scores
from service.decoding.engine import Engine
from service.decoding.manifest import MANIFEST_FILE, read_manifest
from tests.model.corpora import MULTI30K
from tests.support.environment import missing

MODELS_ROOT = PROJECT_ROOT / "models"
MAX_DROP = 1.0


def bundled_models() -> list[Any]:
    """One parameter per model directory under models/, or one skipped parameter saying there is none."""
    found = sorted(path.parent for path in MODELS_ROOT.glob(f"*/{MANIFEST_FILE}"))
    skip = pytest.mark.skip(reason=f"no model directory (with a {MANIFEST_FILE}) under {MODELS_ROOT}")
    return [pytest.param(d, id=d.name) for d in found] or [pytest.param(None, id="none", marks=skip)]


@pytest.mark.parametrize("model_dir", bundled_models())
def test_model_card_matches_the_manifest(model_dir: Path) -> None:
    card = model_dir / CARD_FILE
    assert card.is_file(), f"{card} is missing: run `python -m model pipeline` for {model_dir.name}"
    assert card.read_text(encoding="utf-8") == render_card(read_manifest(model_dir)), (
        f"{card} does not say what {model_dir / MANIFEST_FILE} records: rerun the pipeline (only its card stage runs)"
    )


@pytest.mark.slow
@pytest.mark.corpus
@pytest.mark.skipif(not MULTI30K.is_dir(), reason=missing(f"the Multi30k corpus ({MULTI30K})"))
@pytest.mark.parametrize("model_dir", bundled_models())
def test_test_2016_bleu_has_not_dropped(model_dir: Path) -> None:
    engine = Engine.load(model_dir)
    test = engine.manifest.scores.get("test")
    assert test, f"{model_dir / MANIFEST_FILE} has no test scores: run the pipeline's evaluate stage"
    recorded = test["results"][GATE_SPLIT][engine.variant]
    measured = {
        name: engine_scores(engine, MULTI30K, GATE_SPLIT, Decoding(**settings)).bleu
        for name, settings in test["decoding"].items()
    }
    compared = {name: (recorded[name]["bleu"], round(bleu, 2)) for name, bleu in measured.items()}
    assert all(now >= before - MAX_DROP for before, now in compared.values()), (
        f"{model_dir.name} {engine.variant} {GATE_SPLIT} BLEU (recorded, now): {compared}"
    )
