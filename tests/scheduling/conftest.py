"""The suite's tiny model (fp32) as the scheduler runs it: by default (cohorts on the in-place graph, which
merge), or on the concatenating graph only (cohorts that do not merge)."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.decoding.engine import Engine


@pytest.fixture(scope="session")
def engine(tiny_model_dir: Path) -> Engine:
    return Engine.load(tiny_model_dir, intra_op_threads=1, variant="fp32")


@pytest.fixture(scope="session")
def concat_engine(tiny_model_dir: Path) -> Engine:
    return Engine.load(tiny_model_dir, intra_op_threads=1, variant="fp32", interface="concat")
