"""The NVIDIA GPUs of this machine as nvidia-smi reports them; standard library only, so that `make gpu-check` can
ask before it installs anything.

    python -m bench.gpu                 # one line per GPU, or one `error:` line and exit status 2
    python -m bench.gpu --library-path  # the CUDA library folders of this Python's nvidia-* wheels, ':'-joined
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import sysconfig
from collections.abc import Sequence
from pathlib import Path

# The cuda extra (pyproject.toml): onnxruntime-gpu 1.31 is built for CUDA 13 and needs Python 3.11 or newer.
ONNXRUNTIME_GPU = "onnxruntime-gpu 1.31"
NEEDED_CUDA = (13, 0)
NEEDED_PYTHON = (3, 11)


def nvidia_smi(*args: str) -> str:
    """nvidia-smi's output; RuntimeError with its message when it is missing or fails (no driver, no GPU)."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        raise RuntimeError("nvidia-smi is not installed")
    try:
        done = subprocess.run([smi, *args], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError) as exc:
        raise RuntimeError(f"nvidia-smi failed: {exc}") from exc
    if done.returncode != 0:
        message = (done.stdout + done.stderr).strip().splitlines()
        raise RuntimeError(f"nvidia-smi failed: {message[0] if message else f'exit status {done.returncode}'}")
    return done.stdout


def gpus() -> list[dict[str, str]]:
    """Name, memory and driver version of each GPU; RuntimeError without any."""
    lines = nvidia_smi("--query-gpu=name,memory.total,driver_version", "--format=csv,noheader").strip().splitlines()
    found = [dict(zip(("name", "memory", "driver"), map(str.strip, line.split(",")), strict=True)) for line in lines]
    if not found:
        raise RuntimeError("nvidia-smi lists no GPU")
    return found


def driver_cuda_version() -> tuple[int, int] | None:
    """The newest CUDA version the driver runs ("CUDA Version: 13.0" in nvidia-smi's header); None if not shown."""
    match = re.search(r"CUDA Version:\s*(\d+)\.(\d+)", nvidia_smi())
    return (int(match[1]), int(match[2])) if match else None


def problem() -> str | None:
    """Why `make gpu-check` cannot run here, or None."""
    if sys.version_info < NEEDED_PYTHON:
        return (
            f"Python {sys.version_info.major}.{sys.version_info.minor} is too old for {ONNXRUNTIME_GPU}: give a "
            f"Python {NEEDED_PYTHON[0]}.{NEEDED_PYTHON[1]} or newer (make gpu-check PYTHON=python3.12)"
        )
    try:
        found = gpus()
        cuda = driver_cuda_version()
    except RuntimeError as exc:
        return f"no NVIDIA GPU to run on ({exc}): make gpu-check needs an NVIDIA GPU and its driver"
    if cuda is None or cuda < NEEDED_CUDA:
        runs = "an unknown CUDA version" if cuda is None else f"CUDA {cuda[0]}.{cuda[1]}"
        return (
            f"the NVIDIA driver {found[0]['driver']} runs {runs}; {ONNXRUNTIME_GPU} needs CUDA "
            f"{NEEDED_CUDA[0]} (driver 580 or newer)"
        )
    return None


def library_path() -> str:
    """The lib folders of this Python's nvidia-* wheels (CUDA, cuDNN), for LD_LIBRARY_PATH."""
    nvidia = Path(sysconfig.get_paths()["purelib"]) / "nvidia"
    return ":".join(str(p) for p in sorted(nvidia.glob("*/lib")))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.gpu", description=__doc__.splitlines()[0])
    parser.add_argument("--library-path", action="store_true", help="print the nvidia-* wheels' library folders")
    args = parser.parse_args(argv)
    if args.library_path:
        print(library_path())
        return 0
    reason = problem()
    if reason is not None:
        print(f"error: {reason}", file=sys.stderr)
        return 2
    for gpu in gpus():
        print(f"{gpu['name']}, {gpu['memory']}, driver {gpu['driver']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
