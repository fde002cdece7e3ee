"""The suite's tiny model (fp32) as the scheduler runs it."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.decoding.engine import Engine


@pytest.fixture(scope="session")
def engine(tiny_model_dir: Path) -> Engine:
    return Engine.load(tiny_model_dir, intra_op_threads=1, variant="fp32")
