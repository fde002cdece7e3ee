"""The suite's tiny model (fp32) as the scheduler runs it: both decoder graphs by the default rule, or the
in-place graph for every batch (its cohorts merge)."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.decoding.engine import Engine


@pytest.fixture(scope="session")
def engine(tiny_model_dir: Path) -> Engine:
    return Engine.load(tiny_model_dir, intra_op_threads=1, variant="fp32")


@pytest.fixture(scope="session")
def inplace_engine(tiny_model_dir: Path) -> Engine:
    return Engine.load(tiny_model_dir, intra_op_threads=1, variant="fp32", interface="inplace")
