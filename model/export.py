"""Export a checkpoint to a model directory for the onnxruntime engine (layout in service/decoding/manifest.py).

    python -m model.export --checkpoint runs/en-fr/best.pt --output models/en-fr --variants fp32,int8

Graphs come from the torch.export-based exporter (`dynamo=True`): its graphs have constant reshape targets
and a constant softmax scale, where the TorchScript exporter leaves shape-computation chains that
onnxruntime runs at every step. The in-place decoder step graph of the fp32 and int8 variants
(decoder.step*.onnx, interface "inplace") is built from the weights by model/step_graph.py; `--no-step-decoder`
leaves it out, and the concatenating decoder graph is always written (the fallback). The directory is built
next to the output and renamed into place at the end, so an interrupted export never leaves a directory that
looks complete.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import warnings
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import onnx
import onnxruntime
import onnxscript
import torch
from onnxruntime.quantization import QuantType, quantize_dynamic
from onnxruntime.transformers.float16 import DEFAULT_OP_BLOCK_LIST, convert_float_to_float16
from onnxruntime.transformers.onnx_model import OnnxModel
from torch import Tensor, nn
from torch.export import Dim

from model.checkpoint import CheckpointError, load_checkpoint, model_from_checkpoint
from model.model import KeyValue, Transformer, padding_mask
from model.step_graph import export_step_graph
from model.tokenizer import load_tokenizer
from service.decoding.manifest import (
    EXPLAIN_FILE,
    AttentionSource,
    Manifest,
    SpecialIds,
    Variant,
    sha256_file,
    write_manifest,
)

OPSET = 20
TOKENIZER_FILE = "tokenizer.model"
EXPLAIN_OUTPUTS = ["encoder_self_attention", "decoder_self_attention", "cross_attention"]
VARIANTS = {
    "fp32": Variant("encoder.onnx", "decoder.onnx", "float32"),
    "int8": Variant("encoder.int8.onnx", "decoder.int8.onnx", "int8"),
    "fp16": Variant("encoder.fp16.onnx", "decoder.fp16.onnx", "float16"),
}
STEP_DECODERS = {"fp32": "decoder.step.onnx", "int8": "decoder.step.int8.onnx"}  # in-place graphs (CPU, float)
DEFAULT_VARIANTS = {"CPUExecutionProvider": "int8", "CUDAExecutionProvider": "fp16"}
MAX_LENGTH_A, MAX_LENGTH_B = 1.5, 10
ATTENTION_REASON = (
    "cross-attention of the last decoder layer averaged over heads: the usual source of alignments "
    "(the layer closest to the output prediction); one layer keeps the cost at one small reduction per step"
)


class ExportError(Exception):
    """The export cannot be done as asked (bad variants, output directory not writable or already there)."""


class EncoderGraph(nn.Module):
    """Source ids (B, S) -> cross-attention keys and values of every decoder layer, computed once per batch."""

    def __init__(self, model: Transformer):
        super().__init__()
        self.model = model

    def forward(self, source_ids: Tensor) -> tuple[Tensor, ...]:
        memory = self.model.encode(source_ids)
        return _flat(self.model.decoder.memory_key_values(memory))


class DecoderStepGraph(nn.Module):
    """One decoding step with the self-attention cache; returns log-probabilities, one layer's cross-attention
    averaged over heads (B, S) and the grown cache."""

    def __init__(self, model: Transformer, attention_layer: int):
        super().__init__()
        self.model = model
        self.attention_layer = attention_layer

    def forward(
        self, token: Tensor, position: Tensor, source_mask: Tensor, memory: list[Tensor], past: list[Tensor]
    ) -> tuple[Tensor, ...]:
        log_probs, present, cross = self.model.decode_step(
            token, position, _pairs(memory), source_mask[:, None, None, :], _pairs(past)
        )
        attention = cross[self.attention_layer][:, :, 0].mean(dim=1)
        return (log_probs, attention, *_flat(present))


class ExplainGraph(nn.Module):
    """Source ids (1, S) and decoder input ids (1, T: bos, then a hypothesis) -> the attention weights of every
    layer and head in one teacher-forced pass: encoder self (Le, H, S, S), decoder masked self (Ld, H, T, T),
    cross (Ld, H, T, S). A graph of its own, so translations that do not ask for it never run it."""

    def __init__(self, model: Transformer):
        super().__init__()
        self.model = model

    def forward(self, source_ids: Tensor, target_ids: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        encoder_self: list[Tensor] = []
        decoder_self: list[Tensor] = []
        hooks = [
            layer.self_attn.register_forward_hook(_keep_weights(encoder_self)) for layer in self.model.encoder.layers
        ]
        hooks += [
            layer.self_attn.register_forward_hook(_keep_weights(decoder_self)) for layer in self.model.decoder.layers
        ]
        try:
            memory = self.model.encode(source_ids)
            _, cross = self.model.decode(target_ids, memory, padding_mask(source_ids, self.model.cfg.pad_id))
        finally:
            for hook in hooks:
                hook.remove()
        return tuple(torch.stack(weights)[:, 0] for weights in (encoder_self, decoder_self, cross))  # type: ignore[return-value]


def _keep_weights(into: list[Tensor]) -> Any:
    """A forward hook appending an attention module's weights (its second output) to `into`."""

    def hook(module: nn.Module, inputs: Any, output: tuple[Tensor, Tensor]) -> None:
        into.append(output[1])

    return hook


def _flat(pairs: list[KeyValue]) -> tuple[Tensor, ...]:
    return tuple(t for pair in pairs for t in pair)


def _pairs(flat: list[Tensor]) -> list[KeyValue]:
    return list(zip(flat[0::2], flat[1::2], strict=True))


def cache_names(prefix: str, n_layers: int) -> list[str]:
    """Names of per-layer key/value tensors, e.g. past_key_0, past_value_0, past_key_1, ..."""
    return [f"{prefix}_{kind}_{layer}" for layer in range(n_layers) for kind in ("key", "value")]


@torch.no_grad()
def export_graphs(model: Transformer, directory: Path, attention_layer: int) -> None:
    """Write the fp32 encoder and decoder graphs, with dynamic batch, source length and cache length."""
    cfg, n_layers = model.cfg, model.cfg.n_decoder_layers
    batch, source, cache = Dim("batch"), Dim("source_length"), Dim("cache_length")
    example_batch, example_source, example_cache = 3, 7, 5  # distinct, > 1: no size gets specialized
    src = torch.randint(4, cfg.vocab_size, (example_batch, example_source))
    memory = [t.contiguous() for t in _flat(model.decoder.memory_key_values(model.encode(src)))]
    head_size = cfg.d_model // cfg.n_heads
    past = [torch.randn(example_batch, cfg.n_heads, example_cache, head_size) for _ in range(2 * n_layers)]
    _export(
        EncoderGraph(model),
        (src,),
        directory / VARIANTS["fp32"].encoder,
        ["source_ids"],
        cache_names("memory", n_layers),
        ({0: batch, 1: source},),
    )
    _export(
        DecoderStepGraph(model, attention_layer),
        (src[:, :1], torch.tensor(example_cache), src != cfg.pad_id, memory, past),
        directory / VARIANTS["fp32"].decoder,
        ["token", "position", "source_mask", *cache_names("memory", n_layers), *cache_names("past", n_layers)],
        ["log_probs", "attention", *cache_names("present", n_layers)],
        (
            {0: batch},
            None,
            {0: batch, 1: source},
            [{0: batch, 2: source}] * len(memory),
            [{0: batch, 2: cache}] * len(past),
        ),
    )


@torch.no_grad()
def export_explain_graph(model: Transformer, directory: Path) -> None:
    """Write the fp32 attention-detail graph, with dynamic source and target lengths (one sentence at a time)."""
    source, target = Dim("source_length"), Dim("target_length")
    src = torch.randint(4, model.cfg.vocab_size, (1, 7))
    tgt = torch.randint(4, model.cfg.vocab_size, (1, 5))
    _export(
        ExplainGraph(model),
        (src, tgt),
        directory / EXPLAIN_FILE,
        ["source_ids", "target_ids"],
        EXPLAIN_OUTPUTS,
        ({1: source}, {1: target}),
    )


def _export(
    module: nn.Module,
    args: tuple[Any, ...],
    path: Path,
    input_names: list[str],
    output_names: list[str],
    dynamic_shapes: tuple[Any, ...],
) -> None:
    with warnings.catch_warnings():  # one Dim shared by several inputs is intended; the other is torch's own
        warnings.filterwarnings("ignore", message="# The axis name", category=UserWarning)
        warnings.filterwarnings("ignore", message=".*LeafSpec", category=FutureWarning)
        torch.onnx.export(
            module.eval(),  # the wrapper's mode; the model inside is in eval mode already
            args,
            str(path),
            input_names=input_names,
            output_names=output_names,
            dynamic_shapes=dynamic_shapes,
            opset_version=OPSET,
            dynamo=True,
            optimize=True,
            external_data=False,
            verbose=False,
        )
    onnx.checker.check_model(str(path), full_check=True)


def quantize_int8(source: Path, target: Path) -> None:
    """Dynamic int8 quantization of the weights (per output channel); activations are quantized at run time.
    Tensors whose type shape inference cannot tell (after a contrib operator) are float."""
    extra = {"DefaultTensorType": onnx.TensorProto.FLOAT}
    quantize_dynamic(source, target, weight_type=QuantType.QInt8, per_channel=True, extra_options=extra)
    onnx.checker.check_model(str(target), full_check=True)


def convert_fp16(source: Path, target: Path, keep_fp32_outputs: Sequence[str]) -> None:
    """fp16 weights and caches for CUDA; `keep_fp32_outputs` (log-probabilities, attention) stay fp32."""
    converted = convert_float_to_float16(
        onnx.load(source),
        keep_io_types=list(keep_fp32_outputs),
        op_block_list=[*DEFAULT_OP_BLOCK_LIST, "LogSoftmax"],  # log-probabilities computed in fp32
    )
    graph = OnnxModel(converted)
    graph.topological_sort()  # the converter appends its casts at the end of the node list
    onnx.save(graph.model, target)
    onnx.checker.check_model(str(target), full_check=True)


def write_variants(directory: Path, variants: Sequence[str], step_decoder: bool) -> None:
    """Derive the other variants from the fp32 graphs; drop fp32 if it was not asked for."""
    fp32 = VARIANTS["fp32"]
    for name in variants:
        variant = VARIANTS[name]
        if name == "int8":
            quantize_int8(directory / fp32.encoder, directory / variant.encoder)
            quantize_int8(directory / fp32.decoder, directory / variant.decoder)
            if step_decoder:
                quantize_int8(directory / STEP_DECODERS["fp32"], directory / STEP_DECODERS["int8"])
        elif name == "fp16":
            convert_fp16(directory / fp32.encoder, directory / variant.encoder, [])
            convert_fp16(directory / fp32.decoder, directory / variant.decoder, ["log_probs", "attention"])
    if "fp32" not in variants:
        for file in (fp32.encoder, fp32.decoder, *([STEP_DECODERS["fp32"]] if step_decoder else [])):
            (directory / file).unlink()


def exported_variants(variants: Sequence[str], step_decoder: bool) -> dict[str, Variant]:
    """The manifest's variants: with their in-place step graph where one was written (fp32, int8)."""
    return {
        v: replace(VARIANTS[v], step_decoder=STEP_DECODERS[v]) if step_decoder and v in STEP_DECODERS else VARIANTS[v]
        for v in variants
    }


def training_record(state: dict[str, Any], model: Transformer, checkpoint: Path) -> dict[str, Any]:
    """How the model was trained, as far as its checkpoint says (None where it does not)."""
    return {
        "checkpoint": checkpoint.name,
        "checkpoint_sha256": sha256_file(checkpoint),
        "step": state.get("step"),
        "epochs": state.get("epochs"),
        "train_seconds": state.get("train_seconds"),
        "hardware": state.get("hardware"),
        "parameters": model.num_parameters(),
        "data": state.get("data"),
        "config": state.get("train_config"),
        "init": state.get("init"),  # the checkpoint a fine-tuned model started from, and how it was trained
    }


def build_manifest(
    state: dict[str, Any],
    model: Transformer,
    checkpoint: Path,
    directory: Path,
    name: str,
    version: str,
    languages: tuple[str, str],
    variants: Sequence[str],
    attention_layer: int,
    step_decoder: bool = True,
) -> Manifest:
    """Describe the directory's files (with their sha256), the model they hold and how it was trained."""
    tokenizer = load_tokenizer(state["tokenizer_model"])
    cfg = model.cfg
    return Manifest(
        name=name,
        version=version,
        source_language=languages[0],
        target_language=languages[1],
        vocab_size=cfg.vocab_size,
        special_ids=SpecialIds(
            pad=tokenizer.pad_id(), unk=tokenizer.unk_id(), bos=tokenizer.bos_id(), eos=tokenizer.eos_id()
        ),
        max_positions=cfg.max_positions,
        max_length_a=MAX_LENGTH_A,
        max_length_b=MAX_LENGTH_B,
        decoder_layers=cfg.n_decoder_layers,
        attention=AttentionSource(attention_layer, "mean over heads", ATTENTION_REASON),
        tokenizer=TOKENIZER_FILE,
        variants=exported_variants(variants, step_decoder),
        default_variants={p: v for p, v in DEFAULT_VARIANTS.items() if v in variants},
        files={f.name: sha256_file(f) for f in sorted(directory.iterdir())},
        opset=OPSET,
        exporter=f"torch.onnx.export(dynamo=True), torch {torch.__version__}",
        libraries={
            "torch": torch.__version__,
            "onnx": onnx.__version__,
            "onnxruntime": onnxruntime.__version__,
            "onnxscript": onnxscript.__version__,
        },
        model_config=cfg.to_dict(),
        training=training_record(state, model, checkpoint),
        scores=dict(state.get("metrics") or {}),
        created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        explain=EXPLAIN_FILE,
    )


def export_model(
    checkpoint: Path,
    output_dir: Path,
    name: str,
    version: str,
    variants: Sequence[str] = ("fp32", "int8"),
    source_language: str | None = None,
    target_language: str | None = None,
    attention_layer: int = -1,
    overwrite: bool = False,
    step_decoder: bool = True,
) -> Path:
    """Write a complete model directory at `output_dir` (languages default to the checkpoint's); with
    `step_decoder`, the fp32 and int8 variants get the in-place step graph too (model/step_graph.py)."""
    _check_variants(variants)
    state = load_checkpoint(Path(checkpoint))
    model = _model_of(state, checkpoint)
    layer = _attention_layer(attention_layer, model.cfg.n_decoder_layers)
    languages = _languages(state, source_language, target_language)
    output_dir = Path(output_dir)
    if output_dir.exists() and not overwrite:
        raise ExportError(f"{output_dir} exists already; replace it with overwrite=True (--overwrite)")
    staging = _staging_directory(output_dir)
    try:
        (staging / TOKENIZER_FILE).write_bytes(state["tokenizer_model"])
        export_graphs(model, staging, layer)
        if step_decoder:
            tokenizer = load_tokenizer(state["tokenizer_model"])
            never = [tokenizer.bos_id(), tokenizer.pad_id()]
            export_step_graph(model, staging / STEP_DECODERS["fp32"], layer, never)
        write_variants(staging, variants, step_decoder)
        export_explain_graph(model, staging)
        manifest = build_manifest(
            state, model, Path(checkpoint), staging, name, version, languages, variants, layer, step_decoder
        )
        write_manifest(staging, manifest)
        _move_into_place(staging, output_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return output_dir


def _check_variants(variants: Sequence[str]) -> None:
    unknown = sorted(set(variants) - set(VARIANTS))
    if unknown or not variants:
        raise ExportError(f"variants must be among {', '.join(VARIANTS)}; got {', '.join(variants) or 'none'}")


def _model_of(state: dict[str, Any], checkpoint: Path) -> Transformer:
    """The checkpoint's model, checked against its tokenizer."""
    try:
        model = model_from_checkpoint(state)
        tokenizer = load_tokenizer(state["tokenizer_model"])
    except (TypeError, ValueError, RuntimeError) as exc:  # config or weights not of this model, bad tokenizer
        raise CheckpointError(f"{checkpoint} does not fit this model code: {exc}") from exc
    if tokenizer.get_piece_size() != model.cfg.vocab_size or tokenizer.pad_id() != model.cfg.pad_id:
        raise CheckpointError(
            f"{checkpoint}: tokenizer ({tokenizer.get_piece_size()} pieces, pad {tokenizer.pad_id()}) does not "
            f"match the model ({model.cfg.vocab_size}, pad {model.cfg.pad_id})"
        )
    return model


def _attention_layer(layer: int, n_layers: int) -> int:
    if not -n_layers <= layer < n_layers:
        raise ExportError(f"attention layer {layer} does not exist: the decoder has {n_layers} layers")
    return layer % n_layers


def _languages(state: dict[str, Any], source: str | None, target: str | None) -> tuple[str, str]:
    source, target = source or state.get("source_language"), target or state.get("target_language")
    if not source or not target:
        raise ExportError("the checkpoint does not name its languages: give the source and target language")
    return source, target


def _staging_directory(output_dir: Path) -> Path:
    """An empty directory beside `output_dir`, so the final rename stays on one file system."""
    try:
        output_dir.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{output_dir.name}.", suffix=".partial", dir=output_dir.parent))
        staging.chmod(0o755)  # mkdtemp makes it private; a model directory is meant to be read by a server
        return staging
    except OSError as exc:
        raise ExportError(f"cannot write a model directory at {output_dir}: {exc}") from exc


def _move_into_place(staging: Path, output_dir: Path) -> None:
    """Rename the finished directory to `output_dir`, replacing an older export only once this one is complete."""
    if not output_dir.exists():
        staging.rename(output_dir)
        return
    retired = staging.with_suffix(".old")
    output_dir.rename(retired)
    staging.rename(output_dir)
    shutil.rmtree(retired)


def default_version() -> str:
    """A model version from the UTC time of the export, e.g. 20250101.120000."""
    return datetime.now(timezone.utc).strftime("%Y%m%d.%H%M%S")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m model.export", description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, required=True)
    parser.add_argument("--output", type=Path, required=True, help="the model directory to write")
    parser.add_argument("--name", help="model name (default: the output directory's name)")
    parser.add_argument("--version", help="model version (default: the UTC time of the export)")
    parser.add_argument("--variants", default="fp32,int8", help="comma-separated: fp32, int8, fp16")
    parser.add_argument("--source-language", help="default: the checkpoint's")
    parser.add_argument("--target-language", help="default: the checkpoint's")
    parser.add_argument("--attention-layer", type=int, default=-1, help="decoder layer giving alignments")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing model directory")
    parser.add_argument(
        "--no-step-decoder",
        action="store_true",
        help="write only the concatenating decoder graph, not the in-place step graph (decoder.step*.onnx)",
    )
    args = parser.parse_args(argv)
    try:
        path = export_model(
            args.checkpoint,
            args.output,
            name=args.name or args.output.name,
            version=args.version or default_version(),
            variants=[v.strip() for v in args.variants.split(",") if v.strip()],
            source_language=args.source_language,
            target_language=args.target_language,
            attention_layer=args.attention_layer,
            overwrite=args.overwrite,
            step_decoder=not args.no_step_decoder,
        )
    except (CheckpointError, ExportError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
