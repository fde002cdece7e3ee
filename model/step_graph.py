"""The in-place decoder step graph, built node by node from a Transformer's weights (interface "inplace").

The torch.export exporter cannot emit onnxruntime's contrib operators, so this graph is written with
`onnx.helper` from the module's weights; `tests/engine` checks it against the PyTorch model. One call
advances R rows (sentences x beams) by one token:

* **Self-attention** is `com.microsoft.DecoderMaskedMultiHeadAttention` with `past_present_share_buffer=1`:
  each layer's cache is one preallocated buffer (R, H, max_len, D) that is both the `cache_*` input and the
  `present_*` output (bind the same OrtValue to both); the step writes its keys/values at slot
  `past_sequence_length` in place, nothing is concatenated or copied. Beams are reordered through
  `cache_indirection` (B, W, max_len): entry [b, w, t] names the beam of sentence b whose keys/values at
  slot t row w reads, so a reorder rewrites that small int table, not the cache (`beam_width` = W).
* **Per-row positions and cache mask**, so rows that joined at different steps share one buffer and one
  write slot: `position` (R,) is each row's own target position (the sinusoidal table's row) and
  `self_mask` (R, max_len) is 1 on the slots a row owns (from the slot where it joined to the write slot)
  and 0 before it (the graph reads its first `past_sequence_length + 1` columns).
* **Cross-attention** reads the encoder's keys/values once per sentence, (B, H, S, D), shared by the
  sentence's W = R / B rows: the rows of a sentence are its query positions in one product.
  `source_mask` (B, S) is True on real source tokens.
* **Top-k in the graph**: log-softmax over the vocabulary, bos and pad set to -inf (never an output), then
  `TopK` with `top_k` (1,): `token_ids` and `log_probs` (R, K), best first.
* `attention` (R, S): one layer's cross-attention averaged over heads (the manifest names the layer).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper

from model.model import Transformer

MS_DOMAIN = "com.microsoft"
LAYER_NORM_EPSILON = 1e-5  # torch.nn.LayerNorm's default, as the model's norms use


class _Graph:
    """Collects nodes and initializers under unique names."""

    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self._count = 0

    def name(self, hint: str) -> str:
        self._count += 1
        return f"{hint}_{self._count}"

    def const(self, hint: str, value: np.ndarray | torch.Tensor) -> str:
        array = value.detach().float().numpy() if isinstance(value, torch.Tensor) else value
        name = self.name(hint)
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def op(self, op_type: str, inputs: list[str], outputs: int | list[str] = 1, **attrs: object) -> list[str]:
        names = [self.name(op_type.lower()) for _ in range(outputs)] if isinstance(outputs, int) else outputs
        domain = MS_DOMAIN if op_type == "DecoderMaskedMultiHeadAttention" else ""
        self.nodes.append(helper.make_node(op_type, inputs, names, domain=domain, **attrs))
        return names

    def one(self, op_type: str, inputs: list[str], **attrs: object) -> str:
        return self.op(op_type, inputs, 1, **attrs)[0]

    def linear(self, x: str, module: torch.nn.Linear, hint: str) -> str:
        """x W^T + b: a MatMul on a constant weight (what int8 dynamic quantization turns into integer products)."""
        out = self.one("MatMul", [x, self.const(f"{hint}.weight_t", module.weight.T)])
        return out if module.bias is None else self.one("Add", [out, self.const(f"{hint}.bias", module.bias)])

    def layer_norm(self, x: str, module: torch.nn.LayerNorm, hint: str) -> str:
        weight, bias = self.const(f"{hint}.weight", module.weight), self.const(f"{hint}.bias", module.bias)
        return self.one("LayerNormalization", [x, weight, bias], axis=-1, epsilon=LAYER_NORM_EPSILON)


def cache_input_names(n_layers: int) -> list[str]:
    """The in-place cache buffers, cache_key_0, cache_value_0, ... (their outputs: present_key_0, ...)."""
    return [f"cache_{kind}_{layer}" for layer in range(n_layers) for kind in ("key", "value")]


def memory_names(n_layers: int) -> list[str]:
    return [f"memory_{kind}_{layer}" for layer in range(n_layers) for kind in ("key", "value")]


@torch.no_grad()
def build_step_graph(model: Transformer, attention_layer: int, never: list[int]) -> onnx.ModelProto:
    """The fp32 in-place step graph of `model` (see the module docstring); `never` are ids never emitted."""
    cfg = model.cfg
    g = _Graph()
    heads, head_size = cfg.n_heads, cfg.d_model // cfg.n_heads
    embedded = g.one("Gather", [g.const("embedding", model.tgt_embedding.lookup.weight), "token"])
    scaled = g.one("Mul", [embedded, g.const("embedding_scale", np.array(model.tgt_embedding.scale, np.float32))])
    positions = g.one("Gather", [g.const("positions", model.positional_encoding.table), "position"])
    x = g.one("Unsqueeze", [g.one("Add", [scaled, positions]), g.const("axis1", np.array([1], np.int64))])  # (R,1,C)
    slot_end = g.one("Add", ["past_sequence_length", g.const("one", np.array([1], np.int32))])
    zero = g.const("zero", np.array([0], np.int64))
    slot_axis = g.const("slot_axis", np.array([1], np.int64))
    mask = g.one("Slice", ["self_mask", zero, g.one("Cast", [slot_end], to=TensorProto.INT64), slot_axis])
    source_bias = _source_bias(g)
    cross_shape = g.one(
        "Concat",
        [g.one("Shape", ["source_mask"], start=0, end=1), g.const("cross_dims", np.array([-1, heads, head_size]))],
        axis=0,
    )
    attention = ""
    for i, layer in enumerate(model.decoder.layers):
        h = g.layer_norm(x, layer.norm1, f"layer{i}.norm1")
        x = g.one("Add", [x, _self_attention(g, h, layer.self_attn, i, mask, heads)])
        h = g.layer_norm(x, layer.norm2, f"layer{i}.norm2")
        attended, weights = _cross_attention(g, h, layer.cross_attn, i, source_bias, cross_shape, head_size)
        x = g.one("Add", [x, attended])
        if i == attention_layer:  # (B, H, W, S) -> mean over heads (B, W, S) -> (R, S)
            mean = g.one("ReduceMean", [weights, g.const("axis1", np.array([1], np.int64))], keepdims=0)
            attention = g.one("Flatten", [mean], axis=2)
        h = g.layer_norm(x, layer.norm3, f"layer{i}.norm3")
        up = g.one("Relu", [g.linear(h, layer.feed_forward.up, f"layer{i}.up")])
        x = g.one("Add", [x, g.linear(up, layer.feed_forward.down, f"layer{i}.down")])
    hidden = g.one("Squeeze", [g.layer_norm(x, model.decoder.norm, "final_norm"), g.const("axis", np.array([1]))])
    logits = g.one("MatMul", [hidden, g.const("generator.weight_t", model.generator.weight.T)])
    log_probs = g.one("LogSoftmax", [logits], axis=-1)
    forbidden = np.zeros(cfg.vocab_size, np.float32)
    forbidden[never] = -np.inf
    allowed = g.one("Add", [log_probs, g.const("forbidden", forbidden)])
    _blocked_top_k(g, allowed, cfg.vocab_size)
    g.op("Identity", [attention], ["attention"])
    return _model(g, model, cfg.n_decoder_layers)


def _blocked_top_k(g: _Graph, scores: str, vocab_size: int) -> None:
    """`log_probs` and `token_ids` (R, K): the K best of `scores` (R, V), best first, in two small TopK.

    onnxruntime's TopK over all 8,000 words costs more than the log-softmax. The words are cut into blocks;
    the K best words lie in at most K blocks, and those are among the K blocks with the highest maximum (a
    vectorized reduction), so one TopK ranks the block maxima and a second ranks the K blocks' words only."""
    size = _block_size(vocab_size)
    blocks = vocab_size // size
    grouped = g.one("Reshape", [scores, g.const("grouped", np.array([0, blocks, size], np.int64))])  # (R, nb, b)
    maxima = g.one("ReduceMax", [grouped, g.const("axis2", np.array([2], np.int64))], keepdims=0)  # (R, nb)
    block_k = g.one("Min", ["top_k", g.const("blocks", np.array([blocks], np.int64))])
    best_blocks = g.op("TopK", [maxima, block_k], 2, axis=-1, largest=1, sorted=1)[1]  # (R, kb)
    index = g.one(
        "Expand",
        [
            g.one("Unsqueeze", [best_blocks, g.const("axis2b", np.array([2], np.int64))]),
            g.const("block_width", np.array([1, 1, size], np.int64)),
        ],
    )  # (R, kb, b)
    words = g.one(
        "Reshape", [g.one("GatherElements", [grouped, index], axis=1), g.const("flat", np.array([0, -1], np.int64))]
    )  # (R, kb * b)
    offsets = g.op("TopK", [words, "top_k"], ["log_probs", g.name("offsets")], axis=-1, largest=1, sorted=1)[1]
    width = g.const("block_size", np.array(size, np.int64))
    block = g.one("GatherElements", [best_blocks, g.one("Div", [offsets, width])], axis=1)
    g.op("Add", [g.one("Mul", [block, width]), g.one("Mod", [offsets, width])], ["token_ids"])


def _block_size(vocab_size: int) -> int:
    """The smallest divisor of the vocabulary size from its square root up (8,000: 100; a prime size: itself)."""
    root = math.isqrt(vocab_size)
    return next((b for b in range(root, vocab_size + 1) if vocab_size % b == 0), vocab_size)


def _source_bias(g: _Graph) -> str:
    """0 on real source tokens, -inf on padding: (B, 1, 1, S), added to the cross-attention scores."""
    mask = g.one("Unsqueeze", ["source_mask", g.const("axes12", np.array([1, 2], np.int64))])
    return g.one(
        "Where", [mask, g.const("no_bias", np.array(0.0, np.float32)), g.const("ninf", np.array(-np.inf, np.float32))]
    )


def _self_attention(g: _Graph, h: str, attn: torch.nn.Module, i: int, mask: str, heads: int) -> str:
    """Masked self-attention over the in-place cache of layer i; h (R, 1, C) -> (R, 1, C)."""
    # three products on one input: onnxruntime quantizes h once for them (one fused C -> 3C product and a Split
    # measured slower: the bias Add and the Split are not fused)
    q, k, v = (g.linear(h, getattr(attn, f"{p}_proj"), f"layer{i}.self.{p}") for p in "qkv")
    inputs = [q, k, v, mask, "", f"cache_key_{i}", f"cache_value_{i}", "past_sequence_length"]
    out = g.op(
        "DecoderMaskedMultiHeadAttention",
        [*inputs, "beam_width", "cache_indirection"],
        [g.name("self_out"), f"present_key_{i}", f"present_value_{i}"],
        num_heads=heads,
        past_present_share_buffer=1,
        scale=float(attn.scale),
    )[0]
    return g.linear(out, attn.out_proj, f"layer{i}.self.out")


def _cross_attention(
    g: _Graph, h: str, attn: torch.nn.Module, i: int, source_bias: str, shape: str, head_size: int
) -> tuple[str, str]:
    """Cross-attention of the rows of each sentence over its keys/values (B, H, S, D), shared by its W rows;
    returns the attended values (R, 1, C) and the weights (B, H, W, S)."""
    q = g.linear(h, attn.q_proj, f"layer{i}.cross.q")  # (R, 1, C)
    q = g.one("Transpose", [g.one("Reshape", [q, shape])], perm=[0, 2, 1, 3])  # (B, H, W, D)
    keys_t = g.one("Transpose", [f"memory_key_{i}"], perm=[0, 1, 3, 2])  # (B, H, D, S)
    scale = g.const("cross_scale", np.array(1.0 / math.sqrt(head_size), np.float32))
    scores = g.one("Add", [g.one("Mul", [g.one("MatMul", [q, keys_t]), scale]), source_bias])  # (B, H, W, S)
    weights = g.one("Softmax", [scores], axis=-1)
    attended = g.one("Transpose", [g.one("MatMul", [weights, f"memory_value_{i}"])], perm=[0, 2, 1, 3])  # (B,W,H,D)
    rows = g.one("Reshape", [attended, g.const("rows_shape", np.array([-1, 1, head_size * attn.n_heads]))])
    return g.linear(rows, attn.out_proj, f"layer{i}.cross.out"), weights


def _model(g: _Graph, model: Transformer, n_layers: int) -> onnx.ModelProto:
    cfg = model.cfg
    heads, head_size = cfg.n_heads, cfg.d_model // cfg.n_heads
    f32, i32, i64 = TensorProto.FLOAT, TensorProto.INT32, TensorProto.INT64
    cache = ["rows", heads, "max_length", head_size]
    memory = ["sentences", heads, "source_length", head_size]
    inputs = [
        helper.make_tensor_value_info("token", i64, ["rows"]),
        helper.make_tensor_value_info("position", i64, ["rows"]),
        helper.make_tensor_value_info("past_sequence_length", i32, [1]),
        helper.make_tensor_value_info("self_mask", i32, ["rows", "max_length"]),
        helper.make_tensor_value_info("beam_width", i32, [1]),
        helper.make_tensor_value_info("cache_indirection", i32, ["sentences", "beams", "max_length"]),
        helper.make_tensor_value_info("source_mask", TensorProto.BOOL, ["sentences", "source_length"]),
        helper.make_tensor_value_info("top_k", i64, [1]),
        *(helper.make_tensor_value_info(n, f32, memory) for n in memory_names(n_layers)),
        *(helper.make_tensor_value_info(n, f32, cache) for n in cache_input_names(n_layers)),
    ]
    outputs = [
        helper.make_tensor_value_info("token_ids", i64, ["rows", "k"]),
        helper.make_tensor_value_info("log_probs", f32, ["rows", "k"]),
        helper.make_tensor_value_info("attention", f32, ["rows", "source_length"]),
        *(
            helper.make_tensor_value_info(n.replace("cache_", "present_"), f32, cache)
            for n in cache_input_names(n_layers)
        ),
    ]
    graph = helper.make_graph(g.nodes, "decoder_step_inplace", inputs, outputs, g.initializers)
    opsets = [helper.make_opsetid("", 20), helper.make_opsetid(MS_DOMAIN, 1)]
    return helper.make_model(graph, opset_imports=opsets, producer_name="model.step_graph")


def export_step_graph(model: Transformer, path: Path, attention_layer: int, never: list[int]) -> None:
    """Write the fp32 in-place step graph to `path` and check it."""
    onnx.save(build_step_graph(model.eval(), attention_layer, never), str(path))
    onnx.checker.check_model(str(path), full_check=True)
