"""Decoder graphs that score only some target words: ONNX surgery on an exported decoder step.

The output projection is the product before the LogSoftmax giving `log_probs`. Every constant on the way from
it to the LogSoftmax that has an axis of V words (the weight, and in int8 graphs its per-column scales and zero
points) becomes an input of the decoder, `shortlisted_<name>`, with that axis restricted to the batch's
candidates (V'), so the decoder returns log-probabilities over V' (log-softmax over the subset), in fp32, int8
and fp16 graphs alike, however the rest of the graph was built.

Those inputs come from a second, small graph (the projection graph): `vocabulary` (int64, (V',), sorted
candidate ids) -> each constant gathered at those ids. The engine runs it once per batch and feeds its outputs
at every step: gathering the columns of the weight at every step cost more than the product it saves
(onnxruntime's Gather along an inner axis copies one element at a time).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

from service.decoding.shortlist import VOCABULARY_INPUT

LOG_PROBS = "log_probs"
PREFIX = "shortlisted_"
PRODUCTS = {"MatMul", "MatMulInteger", "Gemm"}
ELEMENTWISE = {"Cast", "Mul", "Add", "Sub", "Div"}
ACTIVATION_INPUTS = {"MatMul": {0}, "MatMulInteger": {0, 2}, "Gemm": {0}}  # the hidden state's side of a product


class ShortlistGraphError(Exception):
    """The decoder graph has no output projection this surgery recognizes."""


def write_shortlist_graphs(decoder: Path, shortlist_decoder: Path, projection: Path, vocab_size: int) -> None:
    """From `decoder`, write the decoder over a restricted vocabulary and the graph that restricts it."""
    model = onnx.load(decoder)
    graph = model.graph
    constants = {i.name: i for i in graph.initializer}
    restricted = _vocabulary_constants(graph, constants, vocab_size)
    if not any(len(constants[name].dims) == 2 for name in restricted):
        raise ShortlistGraphError(f"{decoder}: no weight matrix of {vocab_size} words before the LogSoftmax")
    onnx.save(_projection_graph(constants, restricted, model), projection)
    for name, axis in restricted.items():
        graph.input.append(_restricted_input(constants[name], axis))
    _drop_unused_constants(graph)
    del graph.value_info[:]  # shapes along the projection changed; inferred again below
    _rename_vocabulary_axis(next(o for o in graph.output if o.name == LOG_PROBS), -1)
    onnx.save(onnx.shape_inference.infer_shapes(model), shortlist_decoder)
    for path in (projection, shortlist_decoder):
        onnx.checker.check_model(str(path), full_check=True)


def _vocabulary_constants(
    graph: onnx.GraphProto, constants: dict[str, onnx.TensorProto], vocab_size: int
) -> dict[str, int]:
    """The constants of the output projection with a vocabulary axis (name -> axis); their uses are rewired to
    the restricted inputs."""
    producers = {output: node for node in graph.node for output in node.output}
    node = producers.get(LOG_PROBS)
    while node is not None and node.op_type == "Cast":  # fp16 graphs cast the log-probabilities back to fp32
        node = producers.get(node.input[0])
    if node is None or node.op_type != "LogSoftmax":
        raise ShortlistGraphError(f"{LOG_PROBS} does not come from a LogSoftmax")
    restricted: dict[str, int] = {}
    pending, seen = [node], set()
    while pending:
        node = pending.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        skipped = ACTIVATION_INPUTS.get(node.op_type, set())
        for position, name in enumerate(node.input):
            if position in skipped or not name:
                continue
            if name in constants and (axis := _vocabulary_axis(constants[name], vocab_size)) is not None:
                restricted[name] = axis
                node.input[position] = PREFIX + name
            elif (before := producers.get(name)) is not None and before.op_type in ELEMENTWISE | PRODUCTS:
                pending.append(before)
    return restricted


def _vocabulary_axis(constant: onnx.TensorProto, vocab_size: int) -> int | None:
    """The one axis of size `vocab_size` of a constant, if it has exactly one."""
    axes = [axis for axis, size in enumerate(constant.dims) if size == vocab_size]
    return axes[0] if len(axes) == 1 else None


def _projection_graph(
    constants: dict[str, onnx.TensorProto], restricted: dict[str, int], decoder: onnx.ModelProto
) -> onnx.ModelProto:
    """`vocabulary` -> each restricted constant gathered at those ids along its vocabulary axis. Constants are
    stored with that axis first, so the Gather copies whole rows."""
    nodes, initializers, outputs = [], [], []
    for name, axis in restricted.items():
        value = numpy_helper.to_array(constants[name])
        by_word = f"{name}_by_word"
        initializers.append(numpy_helper.from_array(np.ascontiguousarray(np.moveaxis(value, axis, 0)), by_word))
        gathered = f"{name}_gathered" if axis else PREFIX + name
        nodes.append(helper.make_node("Gather", [by_word, VOCABULARY_INPUT], [gathered], axis=0))
        if axis:
            order = list(range(1, value.ndim))
            order.insert(axis, 0)
            nodes.append(helper.make_node("Transpose", [gathered], [PREFIX + name], perm=order))
        outputs.append(_restricted_input(constants[name], axis))
    vocabulary = helper.make_tensor_value_info(VOCABULARY_INPUT, onnx.TensorProto.INT64, ["vocabulary"])
    graph = helper.make_graph(nodes, "shortlist_projection", [vocabulary], outputs, initializers)
    return helper.make_model(graph, opset_imports=list(decoder.opset_import), ir_version=decoder.ir_version)


def _restricted_input(constant: onnx.TensorProto, axis: int) -> onnx.ValueInfoProto:
    """The value info of a constant restricted to the candidates: its shape, V' along the vocabulary axis."""
    shape: list[int | str] = list(constant.dims)
    shape[axis] = "vocabulary"
    return helper.make_tensor_value_info(PREFIX + constant.name, constant.data_type, shape)


def _drop_unused_constants(graph: onnx.GraphProto) -> None:
    """Remove the constants only the projection used (the fp32 weight stays: the embedding shares it)."""
    used = {name for node in graph.node for name in node.input}
    kept = [i for i in graph.initializer if i.name in used]
    del graph.initializer[:]
    graph.initializer.extend(kept)


def _rename_vocabulary_axis(value: onnx.ValueInfoProto, axis: int) -> None:
    dim = value.type.tensor_type.shape.dim[axis]
    dim.Clear()
    dim.dim_param = "vocabulary"
