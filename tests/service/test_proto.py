"""The committed generated code in service/api matches what proto/generate.sh makes from proto/."""

from __future__ import annotations

import filecmp
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts}


def test_generated_code_is_up_to_date(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHON": sys.executable}
    script = ROOT / "proto" / "generate.sh"
    subprocess.run(["bash", str(script), str(tmp_path)], check=True, env=env, timeout=60)
    committed = ROOT / "service" / "api"
    assert _files(tmp_path) == _files(committed)
    for name in _files(tmp_path):
        same = filecmp.cmp(tmp_path / name, committed / name, shallow=False)
        assert same, f"{name} differs: run `make proto`"


def test_generated_package_imports() -> None:
    from service.api.translation.v1 import translation_pb2, translation_pb2_grpc

    assert translation_pb2.DESCRIPTOR.package == "translation.v1"
    assert hasattr(translation_pb2_grpc, "TranslatorStub")
