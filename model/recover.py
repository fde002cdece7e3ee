"""Recover a PyTorch checkpoint from a model directory that ships only int8 graphs (no checkpoint).

    python -m model.recover models/en-fr --output runs/recovered/en-fr.pt

Every weight is read from the graphs' initializers: float ones as they are, int8/uint8 ones dequantized
(w = scale * (q - zero_point), per tensor or per output channel, as onnxruntime's `quantize_dynamic` wrote
them). The values are chosen so that quantizing them again gives back the same integers, scales and zero
points: each lies where every quantized form of it (the tied embedding has two: per-tensor uint8 for the
lookup, per-channel int8 for the output projection) rounds to its integer, and the extremes that set a scale
are placed where they give that scale exactly. `requantization_mismatches` checks it with onnxruntime's own
quantization code. The manifest's `model_config` rebuilds the Transformer; quantized weights are named by
the bias added after their product (`model.<module>.bias`), or by their own name.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch
from onnx import numpy_helper
from onnxruntime.quantization.quant_utils import compute_scale_zp

from model.checkpoint import save_checkpoint
from model.model import ModelConfig, Transformer
from service.decoding.manifest import Manifest, ModelLoadError, read_manifest

PREFIX = "model."
QUANTIZED, SCALE, ZERO_POINT, TRANSPOSED = "_quantized", "_scale", "_zero_point", "_Transposed"
NUDGES = 8  # float32 steps tried around a computed extreme


class RecoveryError(Exception):
    """The graphs do not hold a complete set of this model's weights."""


@dataclass(frozen=True)
class QuantizedView:
    """One quantized form of a weight, in the weight's orientation: value = scale * (q - zero_point), where
    scale and zero point are one per tensor (axis None) or one per slice along `axis`."""

    q: np.ndarray
    scale: np.ndarray
    zero_point: np.ndarray
    axis: int | None

    @property
    def symmetric(self) -> bool:
        return self.q.dtype == np.int8

    @property
    def qrange(self) -> tuple[int, int]:
        return (-127, 127) if self.symmetric else (0, 255)

    def per_element(self, values: np.ndarray) -> np.ndarray:
        """Per-slice values broadcast against the weight."""
        if self.axis is None:
            return values
        shape = [1] * self.q.ndim
        shape[self.axis] = -1
        return values.reshape(shape)

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """The float64 interval of values that round to each element's integer (within +-127 s when symmetric:
        the largest magnitude sets the scale)."""
        scale = self.per_element(self.scale.astype(np.float64))
        steps = self.q.astype(np.float64) - self.per_element(self.zero_point.astype(np.float64))
        low, high = scale * (steps - 0.5), scale * (steps + 0.5)
        if self.symmetric:
            return np.maximum(low, -127 * scale), np.minimum(high, 127 * scale)
        return low, high

    def groups(self) -> Iterator[tuple[tuple[Any, ...], np.ndarray, np.ndarray]]:
        """(index of the group's elements, its scale, its zero point) for each group sharing a scale."""
        if self.axis is None:
            yield (slice(None),) * self.q.ndim, self.scale, self.zero_point
            return
        for i in range(self.q.shape[self.axis]):
            index = tuple(i if d == self.axis else slice(None) for d in range(self.q.ndim))
            yield index, self.scale[i], self.zero_point[i]

    def params_of(self, group: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The (zero point, scale) onnxruntime's quantizer computes for a group of float32 values."""
        qmin, qmax = (np.array(v, dtype=self.q.dtype) for v in self.qrange)
        zero_point, scale = compute_scale_zp(group.min(), group.max(), qmin, qmax, symmetric=self.symmetric)
        return zero_point, scale

    def integer_at(self, w: np.ndarray, at: tuple[int, ...]) -> int:
        """The integer onnxruntime's quantizer gives one element of `w`."""
        channel = () if self.axis is None else (at[self.axis],)
        scale, zero_point = self.scale[channel], np.float32(self.zero_point[channel])
        return int(np.clip(np.round(w[at] / scale) + zero_point, *self.qrange))

    def integers_of(self, w: np.ndarray) -> np.ndarray:
        """The integers onnxruntime's quantizer gives `w` with this view's scales and zero points."""
        scale = self.per_element(self.scale)
        zero_point = self.per_element(self.zero_point.astype(np.float32))
        return np.clip((w / scale).round() + zero_point, *self.qrange)

    def mismatches(self, w: np.ndarray) -> int:
        """How many integers, scales and zero points quantizing `w` again would change."""
        wrong = int(np.count_nonzero(self.integers_of(w) != self.q))
        for index, scale, zero_point in self.groups():
            new_zero_point, new_scale = self.params_of(w[index])
            wrong += int(new_scale != scale) + int(new_zero_point != zero_point)
        return wrong


def fit_weight(views: Sequence[QuantizedView]) -> np.ndarray:
    """Float32 values that every view quantizes back to itself (see the module docstring)."""
    low = np.max([v.bounds()[0] for v in views], axis=0)
    high = np.min([v.bounds()[1] for v in views], axis=0)
    first = sum(views[0].bounds()) / 2
    w = np.where(low <= high, (low + high) / 2, first).astype(np.float32)
    for view in (v for v in views if v.symmetric):
        _place_absmax(w, view, views)
    for view in (v for v in views if not v.symmetric):
        _place_range(w, view, views)
    return w


def _place_absmax(w: np.ndarray, view: QuantizedView, views: Sequence[QuantizedView]) -> None:
    """Give each group's largest magnitude the value that yields its scale (about s * 127) in every view,
    on the first element quantized to +-127 where that value fits the other views."""
    for index, scale, zero_point in view.groups():
        q = view.q[index]
        for at in zip(*np.nonzero(np.abs(q.astype(np.int32)) == 127), strict=True):
            target = np.float32(np.sign(q[at]) * scale * np.float32(127))
            if _try_values(w, index, at, _near(target), view, (zero_point, scale), views):
                break


def _place_range(w: np.ndarray, view: QuantizedView, views: Sequence[QuantizedView]) -> None:
    """Make each group's minimum and maximum give its scale and zero point, moving one of them to about
    the other +- 255 * s."""
    for index, scale, zero_point in view.groups():
        group = w[index]
        if view.params_of(group) == (zero_point, scale):
            continue
        low, high = np.unravel_index(group.argmin(), group.shape), np.unravel_index(group.argmax(), group.shape)
        span = np.float64(scale) * 255
        for moved, fixed, sign in ((high, low, 1), (low, high, -1)):
            target = np.float32(group[fixed] + sign * span)
            if _try_values(w, index, moved, _near(target), view, (zero_point, scale), views):
                break


def _try_values(
    w: np.ndarray,
    index: tuple[Any, ...],
    at: tuple[Any, ...],
    candidates: Iterator[np.float32],
    view: QuantizedView,
    params: tuple[Any, Any],
    views: Sequence[QuantizedView],
) -> bool:
    """Set `group[at]` to the first candidate that gives the group `params` (zero point, scale) and keeps the
    element's integer in every view; leave it unchanged if none does."""
    group = w[index]
    original, full = group[at], _full_index(index, at)
    for candidate in candidates:
        group[at] = candidate
        if view.params_of(group) == params and _element_holds(w, full, views):
            return True
    group[at] = original
    return False


def _near(value: np.float32) -> Iterator[np.float32]:
    """`value`, then the float32 values next to it, nearest first."""
    up = down = np.float32(value)
    yield up
    for _ in range(NUDGES):
        up, down = np.nextafter(up, np.float32(np.inf)), np.nextafter(down, np.float32(-np.inf))
        yield up
        yield down


def _full_index(index: tuple[Any, ...], at: tuple[Any, ...]) -> tuple[int, ...]:
    """The weight's index of element `at` of the group `w[index]`."""
    inner = iter(at)
    return tuple(int(next(inner)) if isinstance(i, slice) else int(i) for i in index)


def _element_holds(w: np.ndarray, at: tuple[int, ...], views: Sequence[QuantizedView]) -> bool:
    """Whether every view still quantizes this element to its integer."""
    return all(v.integer_at(w, at) == int(v.q[at]) for v in views)


def requantization_mismatches(views: Sequence[QuantizedView], w: np.ndarray) -> int:
    """Integers, scales and zero points that quantizing `w` again would change, over all views."""
    return sum(v.mismatches(w) for v in views)


def graph_weights(path: Path) -> tuple[dict[str, np.ndarray], dict[str, list[QuantizedView]]]:
    """The float weights (by parameter name) and the quantized forms of the others, of one int8 graph."""
    graph = onnx.load(path).graph
    initializers = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    floats = {
        name.removeprefix(PREFIX): array
        for name, array in initializers.items()
        if name.startswith(PREFIX) and array.dtype == np.float32 and not name.endswith((SCALE, TRANSPOSED))
    }
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    quantized: dict[str, list[QuantizedView]] = {}
    for node in graph.node:
        if node.op_type == "MatMulInteger":
            base = node.input[1].removesuffix(QUANTIZED)
            name = _product_weight_name(base, node.output[0], consumers, initializers)
            quantized.setdefault(name, []).append(_view(initializers, base, transposed=True))
        elif node.op_type == "Gather" and node.input[0].endswith(QUANTIZED):
            base = node.input[0].removesuffix(QUANTIZED)
            quantized.setdefault(base.removeprefix(PREFIX), []).append(_view(initializers, base, transposed=False))
    return floats, quantized


def _view(initializers: dict[str, np.ndarray], base: str, transposed: bool) -> QuantizedView:
    """A quantized initializer in the weight's orientation (products store it transposed: (in, out))."""
    q, scale, zero_point = (initializers[base + suffix] for suffix in (QUANTIZED, SCALE, ZERO_POINT))
    per_channel = scale.ndim == 1
    if transposed:
        return QuantizedView(q.T, scale, zero_point, 0 if per_channel else None)
    return QuantizedView(q, scale, zero_point, q.ndim - 1 if per_channel else None)


def _product_weight_name(
    base: str, output: str, consumers: dict[str, list[onnx.NodeProto]], initializers: dict[str, np.ndarray]
) -> str:
    """The parameter a quantized product multiplies by: its own name, or the bias added to its result."""
    if base.startswith(PREFIX):
        return base.removeprefix(PREFIX).removesuffix(TRANSPOSED)
    frontier = [output]
    for _ in range(4):  # MatMulInteger -> Cast -> Mul (scales) -> Add (bias)
        nodes = [n for name in frontier for n in consumers.get(name, [])]
        for node in nodes:
            biases = [i for i in node.input if i.startswith(PREFIX) and i.endswith(".bias") and i in initializers]
            if node.op_type == "Add" and biases:
                return biases[0].removeprefix(PREFIX).removesuffix(".bias") + ".weight"
        frontier = [o for n in nodes for o in n.output]
    raise RecoveryError(f"cannot tell which weight {base} is: no bias is added after its product")


@dataclass
class Recovered:
    """A rebuilt model and how exactly its weights reproduce the graphs' quantized ones."""

    model: Transformer
    quantized_weights: int
    mismatches: int


def recover_model(model_dir: Path) -> tuple[Recovered, Manifest]:
    """Rebuild the Transformer of a model directory's int8 graphs."""
    manifest = read_manifest(model_dir)
    if "int8" not in manifest.variants:
        raise RecoveryError(f"{model_dir} has no int8 variant (it has {', '.join(manifest.variants)})")
    variant = manifest.variants["int8"]
    floats: dict[str, np.ndarray] = {}
    views: dict[str, list[QuantizedView]] = {}
    for graph in (variant.encoder, variant.decoder):
        graph_floats, graph_views = graph_weights(model_dir / graph)
        floats.update(graph_floats)
        for name, found in graph_views.items():
            views.setdefault(name, []).extend(_distinct(views.get(name, []), found))
    model = Transformer(ModelConfig(**manifest.model_config))
    parameters = dict(model.named_parameters(remove_duplicate=False))
    fitted = {name: fit_weight(found) for name, found in views.items() if name in parameters}
    mismatches = sum(requantization_mismatches(views[name], w) for name, w in fitted.items())
    _load(model, {**floats, **fitted})
    return Recovered(model.eval(), len(fitted), mismatches), manifest


def _distinct(known: list[QuantizedView], found: list[QuantizedView]) -> list[QuantizedView]:
    """The views of `found` not already known (the encoder and decoder both hold the tied embedding)."""
    return [v for v in found if not any(_same(v, k) for k in known)]


def _same(a: QuantizedView, b: QuantizedView) -> bool:
    return a.axis == b.axis and all(
        np.array_equal(x, y) for x, y in ((a.q, b.q), (a.scale, b.scale), (a.zero_point, b.zero_point))
    )


def _load(model: Transformer, weights: dict[str, np.ndarray]) -> None:
    """Copy weights onto the model's parameters by name (tied parameters under any of their names)."""
    parameters = dict(model.named_parameters(remove_duplicate=False))
    filled: set[int] = set()
    for name, array in weights.items():
        if name not in parameters:
            continue  # a buffer such as the positional table: the model computes it
        parameter = parameters[name]
        if tuple(parameter.shape) != array.shape:
            raise RecoveryError(
                f"{name}: the graphs hold {array.shape}, the model config wants {tuple(parameter.shape)}"
            )
        with torch.no_grad():
            parameter.copy_(torch.from_numpy(np.array(array, dtype=np.float32)))
        filled.add(id(parameter))
    missing = sorted(name for name, p in parameters.items() if id(p) not in filled)
    if missing:
        raise RecoveryError(f"the graphs hold no value for {', '.join(missing)}")


def recover_checkpoint(model_dir: Path, output: Path) -> Recovered:
    """Write a checkpoint (model.checkpoint format) rebuilt from a model directory's int8 graphs."""
    model_dir = Path(model_dir)
    recovered, manifest = recover_model(model_dir)
    save_checkpoint(
        Path(output),
        recovered.model,
        (model_dir / manifest.tokenizer).read_bytes(),
        source_language=manifest.source_language,
        target_language=manifest.target_language,
        recovered_from={"model": manifest.name, "version": manifest.version, "variant": "int8"},
        step=manifest.training.get("step"),
        data=manifest.training.get("data"),
    )
    return recovered


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m model.recover", description=__doc__.splitlines()[0])
    parser.add_argument("model_dir", type=Path, help="a model directory with an int8 variant")
    parser.add_argument("--output", type=Path, required=True, help="the checkpoint to write")
    args = parser.parse_args(argv)
    try:
        recovered = recover_checkpoint(args.model_dir, args.output)
    except (ModelLoadError, RecoveryError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(
        f"wrote {args.output}: {recovered.quantized_weights} quantized weights, "
        f"{recovered.mismatches} integers/scales/zero points that re-quantizing would change"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
