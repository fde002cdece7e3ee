"""The model directory's `manifest.json`: what a directory holds, written by the exporter, checked by the engine.

A model directory:

    manifest.json          this description (not hashed itself, so scores can be updated later)
    tokenizer.model        SentencePiece model, joint source/target vocabulary
    encoder.onnx           fp32: source ids (B, S) -> cross-attention keys/values of every decoder layer
    decoder.onnx           fp32: one decoding step with the self-attention key/value cache (interface "concat":
                           the cache grows by concatenation; every engine can run it, the fallback)
    decoder.step.onnx      fp32, optional: the in-place step graph (interface "inplace", model/step_graph.py:
                           preallocated cache written in place, beams by cache indirection, top-k in the graph)
    decoder.step.int8.onnx int8, optional: the same, quantized
    encoder.int8.onnx      int8 (dynamic quantization, CPU), same inputs and outputs
    decoder.int8.onnx
    encoder.fp16.onnx      fp16 (CUDA); caches in fp16, log-probabilities and attention stay fp32
    decoder.fp16.onnx
    explain.onnx           fp32, optional: source ids (1, S) and decoder input ids (1, T) -> the attention of
                           every layer and head (encoder self, decoder self, cross), for attention_detail
    shortlist.npz          optional: the lexical shortlist (service/decoding/shortlist.py), and per variant:
    decoder.shortlist.int8.onnx     the decoder scoring only a batch's candidate words
    projection.shortlist.int8.onnx  candidate ids -> the output projection restricted to them, fed to that decoder

Only the variants listed in the manifest are present, explain.onnx only where `explain` names it, and the
shortlist's files only where `shortlist` names them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

MANIFEST_FILE = "manifest.json"
EXPLAIN_FILE = "explain.onnx"  # the attention-detail graph, where a directory has one
FORMAT_VERSION = 1


class ModelLoadError(Exception):
    """A model directory is missing, incomplete, tampered with or not one the engine can run."""


@dataclass(frozen=True)
class Variant:
    """One precision of the model: its encoder and decoder files. The engine runs `step_decoder` (interface
    "inplace") where the variant has one, else `decoder` (interface "concat"), which stays as the fallback."""

    encoder: str
    decoder: str
    precision: str  # float32 | int8 | float16
    step_decoder: str = ""  # the in-place step graph, "" where the variant has none

    @property
    def interface(self) -> str:
        """The decoder interface the engine runs by default: "inplace" or "concat"."""
        return "inplace" if self.step_decoder else "concat"

    @property
    def files(self) -> list[str]:
        return [self.encoder, self.decoder, *([self.step_decoder] if self.step_decoder else [])]


@dataclass(frozen=True)
class SpecialIds:
    """Token ids with a fixed meaning in the vocabulary."""

    pad: int
    unk: int
    bos: int
    eos: int


@dataclass(frozen=True)
class AttentionSource:
    """Which cross-attention the decoder returns as alignments, and why that one."""

    layer: int  # 0-based decoder layer
    reduction: str
    reason: str


@dataclass(frozen=True)
class ShortlistFiles:
    """The lexical shortlist of a directory: its file, each variant's graphs that score only its candidates,
    whether the engine uses it unless told otherwise, and how it was built and measured."""

    file: str
    decoders: dict[str, str]  # variant -> decoder over a restricted output projection
    projections: dict[str, str]  # variant -> graph restricting the output projection to candidate ids
    enabled: bool = False
    built: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Manifest:
    """Everything the engine needs to know about a model directory, and what a person needs to trust it."""

    name: str
    version: str
    source_language: str
    target_language: str
    vocab_size: int
    special_ids: SpecialIds
    max_positions: int
    max_length_a: float  # default cap on target tokens: a * source tokens + b
    max_length_b: int
    decoder_layers: int
    attention: AttentionSource
    tokenizer: str
    variants: dict[str, Variant]
    default_variants: dict[str, str]  # execution provider -> variant to use when none is asked for
    files: dict[str, str]  # file name -> sha256 hex digest, every file but the manifest
    opset: int
    exporter: str
    libraries: dict[str, str]
    model_config: dict[str, Any]
    training: dict[str, Any] = field(default_factory=dict)
    scores: dict[str, Any] = field(default_factory=dict)
    created_at: str = ""
    explain: str = ""  # the attention-detail graph's file; "" where the directory has none
    shortlist: ShortlistFiles | None = None
    format_version: int = FORMAT_VERSION

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, default=str) + "\n"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Manifest:
        """Build from parsed JSON; raises KeyError or TypeError when it does not fit the schema."""
        return cls(
            **{
                **data,
                "special_ids": SpecialIds(**data["special_ids"]),
                "attention": AttentionSource(**data["attention"]),
                "variants": {name: Variant(**v) for name, v in data["variants"].items()},
                "shortlist": ShortlistFiles(**data["shortlist"]) if data.get("shortlist") else None,
            }
        )

    def without_variants(self, names: Iterable[str]) -> Manifest:
        """This manifest with the variants `names` dropped, their files no longer listed."""
        dropped = set(names)
        kept = {name: v for name, v in self.variants.items() if name not in dropped}
        gone = {f for name in dropped for f in self.variants[name].files}
        shortlist = self.shortlist
        if shortlist is not None:
            gone |= {
                f for graphs in (shortlist.decoders, shortlist.projections) for n, f in graphs.items() if n in dropped
            }
            shortlist = replace(
                shortlist,
                decoders={n: f for n, f in shortlist.decoders.items() if n not in dropped},
                projections={n: f for n, f in shortlist.projections.items() if n not in dropped},
            )
        return replace(
            self,
            variants=kept,
            files={f: digest for f, digest in self.files.items() if f not in gone},
            default_variants={p: v for p, v in self.default_variants.items() if v in kept},
            shortlist=shortlist,
        )

    def variant_for(self, provider: str) -> str:
        """The variant to run on `provider` when none is asked for: the manifest's choice, else fp32, else any."""
        preferred = self.default_variants.get(provider)
        if preferred in self.variants:
            return preferred
        return "fp32" if "fp32" in self.variants else next(iter(self.variants))


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_manifest(model_dir: Path) -> Manifest:
    """Parse and check a model directory's manifest; every listed file must exist with its recorded sha256."""
    path = model_dir / MANIFEST_FILE
    if not path.is_file():
        raise ModelLoadError(f"{model_dir} is not a model directory: {MANIFEST_FILE} is missing")
    try:
        data = json.loads(path.read_text())
        if data.get("format_version") != FORMAT_VERSION:
            raise ModelLoadError(
                f"{path} has format {data.get('format_version')}; this engine reads format {FORMAT_VERSION}"
            )
        manifest = Manifest.from_dict(data)
    except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
        raise ModelLoadError(f"{path} is malformed: {exc!r}") from exc
    _check_listed(manifest, path)
    verify_files(model_dir, manifest.files)
    return manifest


def write_manifest(model_dir: Path, manifest: Manifest) -> None:
    """Replace a model directory's manifest atomically (a reader sees the old one or the new one, never half)."""
    path = model_dir / MANIFEST_FILE
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(manifest.to_json())
    tmp.replace(path)


def _check_listed(manifest: Manifest, path: Path) -> None:
    """The tokenizer and every variant's graphs must be among the hashed files."""
    needed = {manifest.tokenizer} | {f for v in manifest.variants.values() for f in v.files}
    needed |= {manifest.explain} - {""}
    if manifest.shortlist is not None:
        shortlist = manifest.shortlist
        needed |= {shortlist.file, *shortlist.decoders.values(), *shortlist.projections.values()}
    unlisted = sorted(needed - set(manifest.files))
    if unlisted:
        raise ModelLoadError(f"{path} names files without a sha256: {', '.join(unlisted)}")


def verify_files(model_dir: Path, files: dict[str, str]) -> None:
    """Refuse a directory whose files are missing or differ from what was exported."""
    for name, expected in files.items():
        path = model_dir / name
        if not path.is_file():
            raise ModelLoadError(f"{path} is missing from the model directory")
        if sha256_file(path) != expected:
            raise ModelLoadError(f"{path} does not match its sha256 in {MANIFEST_FILE} (modified or corrupt)")
