"""int8 products are exact on every x86 CPU, with or without VNNI (service/decoding/int8.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from service.decoding.engine import open_session
from service.decoding.int8 import cpu_flags, needs_exact_int8_products

K, N = 256, 64


def quantized_matmul_graph(weights: np.ndarray, path: Path) -> Path:
    """One DynamicQuantizeMatMul node, the operator int8 graphs run their products with after optimization."""
    node = helper.make_node("DynamicQuantizeMatMul", ["A", "B", "b_scale", "b_zp"], ["Y"], domain="com.microsoft")
    graph = helper.make_graph(
        [node],
        "product",
        [helper.make_tensor_value_info("A", TensorProto.FLOAT, [None, K])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [None, N])],
        [
            numpy_helper.from_array(weights, "B"),
            numpy_helper.from_array(np.array([1.0], np.float32), "b_scale"),
            numpy_helper.from_array(np.array([0], np.int8), "b_zp"),
        ],
    )
    opsets = [helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)]
    onnx.save(helper.make_model(graph, opset_imports=opsets), path)
    return path


def test_products_of_large_activations_and_weights_do_not_saturate(tmp_path: Path) -> None:
    """Activations at the top of the u8 range times weights near +-127: where AVX2's pairwise 16-bit sums saturate
    (errors of hundreds without the setting on an emulated AMD EPYC Rome), the product must still be exact."""
    rng = np.random.default_rng(0)
    weights = rng.integers(-128, 128, size=(K, N)).astype(np.int8)
    session = open_session(
        quantized_matmul_graph(weights, tmp_path / "product.onnx"), ["CPUExecutionProvider"], intra_op_threads=1
    )
    activations = np.abs(rng.standard_normal((4, K))).astype(np.float32)
    activations[0] = activations.max()  # a whole row quantized to 255
    (product,) = session.run(None, {"A": activations})
    scale = activations.max() / 255  # dynamic u8 quantization of non-negative values: zero point 0
    exact = np.clip(np.round(activations / scale), 0, 255) @ weights.astype(np.float64) * scale
    np.testing.assert_allclose(product, exact, atol=1e-2 * np.abs(exact).max() / 1e4)


def test_only_cpus_without_vnni_get_the_slower_exact_path() -> None:
    assert needs_exact_int8_products(frozenset({"avx2", "avx512f", "avx512bw"}))  # AMD EPYC Milan, Intel Skylake
    assert not needs_exact_int8_products(frozenset({"avx2", "avx512f", "avx512_vnni"}))  # Cascade Lake, EPYC Genoa
    assert not needs_exact_int8_products(frozenset({"avx2", "avx_vnni"}))  # Alder Lake
    assert needs_exact_int8_products(None)  # flags unknown: the path that is always exact


def test_cpu_flags_are_read_from_the_cpuinfo_flags_line(tmp_path: Path) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nmodel name\t: Some CPU\nflags\t\t: fpu sse2 avx2 avx512_vnni\n\n")
    assert cpu_flags(cpuinfo) == {"fpu", "sse2", "avx2", "avx512_vnni"}
    cpuinfo.write_text("processor\t: 0\nFeatures\t: fp asimd\n")  # an Arm CPU lists no x86 flags
    assert cpu_flags(cpuinfo) is None
    assert cpu_flags(tmp_path / "missing") is None
