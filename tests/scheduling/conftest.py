"""The suite's tiny model (fp32) as the scheduler runs it: by default (beam search on the in-place graph, whose
cohorts merge, greedy on the concatenating one), or on one of the graphs for every search."""

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


@pytest.fixture(scope="session")
def concat_engine(tiny_model_dir: Path) -> Engine:
    return Engine.load(tiny_model_dir, intra_op_threads=1, variant="fp32", interface="concat")
