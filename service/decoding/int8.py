"""Whether this CPU needs onnxruntime's exact, slower path for int8 products.

onnxruntime multiplies u8 activations by s8 weights. x86 CPUs with VNNI (AVX-512 VNNI or AVX-VNNI; every CPU with
AMX has them) add the products in 32 bits. CPUs without (AVX2 or AVX-512 before VNNI, e.g. AMD EPYC Rome and
Milan) use an instruction that saturates pairs of products at 16 bits: the int8 graphs' products come out wrong
there (errors up to 763 on a product of 32,677, on an emulated EPYC Rome). The session setting
`session.x64quantprecision` has onnxruntime turn the s8 weights into u8 at load and multiply u8 by u8: exact on
every CPU, but 3.5x slower per product on an Intel Xeon with VNNI and AMX. So the engine sets it only on x86
CPUs that lack VNNI, and wherever it cannot tell.
"""

from __future__ import annotations

import functools
from pathlib import Path

EXACT_INT8_PRODUCTS = "session.x64quantprecision"
VNNI_FLAGS = frozenset({"avx512_vnni", "avx_vnni"})


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> frozenset[str] | None:
    """The CPU's feature flags as Linux lists them for an x86 CPU; None where they are not listed."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.partition(":")[2].split())
    return None


def needs_exact_int8_products(flags: frozenset[str] | None) -> bool:
    """Whether products of u8 by s8 could saturate: no VNNI among the flags, or flags unknown."""
    return flags is None or not flags & VNNI_FLAGS


@functools.cache
def this_cpu_needs_exact_int8_products() -> bool:
    """`needs_exact_int8_products` for the CPU this process runs on."""
    return needs_exact_int8_products(cpu_flags())
