"""Add a lexical shortlist to a model directory: candidate target words per source word, from a training corpus.

    python -m model.shortlist --model-dir models/en-fr --corpus /work/shared/data/multi30k --pair en-fr

For each source subword: itself (names and numbers are copied) and the `--top-k` target subwords that
co-occur with it in the most sentence pairs relative to how often either occurs (the Dice coefficient,
2 c(s, t) / (c(s) + c(t)), counted once per sentence pair); for every batch: the `--frequent` most frequent
target subwords and end of sentence. The directory gets `shortlist.npz` and, for each variant, a decoder
graph scoring only a batch's candidates (model/shortlist_graph.py); its manifest lists them with their sha256.
The engine uses them by default only with `--enable`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import sentencepiece as spm

from model.data import CorpusError, read_parallel
from model.shortlist_graph import ShortlistGraphError, write_shortlist_graphs
from service.decoding.manifest import (
    Manifest,
    ModelLoadError,
    ShortlistFiles,
    read_manifest,
    sha256_file,
    write_manifest,
)
from service.decoding.shortlist import SHORTLIST_FILE, Shortlist

DEFAULT_TOP_K = 100
DEFAULT_FREQUENT = 200


def build_shortlist(
    sources: Sequence[Sequence[int]],
    targets: Sequence[Sequence[int]],
    vocab_size: int,
    top_k: int,
    frequent: int,
    always: Sequence[int],
) -> Shortlist:
    """The shortlist of tokenized sentence pairs (see the module docstring)."""
    source_sets = [np.unique(np.asarray(s, dtype=np.int64)) for s in sources]
    target_sets = [np.unique(np.asarray(t, dtype=np.int64)) for t in targets]
    pairs_of = zip(source_sets, target_sets, strict=True)
    keys = np.concatenate([(s[:, None] * vocab_size + t[None, :]).ravel() for s, t in pairs_of])
    pairs, together = np.unique(keys, return_counts=True)
    source_of, target_of = np.divmod(pairs, vocab_size)
    source_count = np.bincount(np.concatenate(source_sets), minlength=vocab_size)
    target_count = np.bincount(np.concatenate(target_sets), minlength=vocab_size)
    dice = 2 * together / (source_count[source_of] + target_count[target_of])
    order = np.lexsort((-together, -dice, source_of))  # by source id, best first
    ranked = source_of[order]
    rank = np.arange(len(order)) - np.searchsorted(ranked, ranked)
    kept = order[rank < top_k]
    identity = np.arange(vocab_size)
    return _from_pairs(
        np.concatenate([source_of[kept], identity]),
        np.concatenate([target_of[kept], identity]),
        vocab_size,
        np.union1d(_most_frequent(targets, vocab_size, frequent), np.asarray(always, dtype=np.int64)),
    )


def _most_frequent(targets: Sequence[Sequence[int]], vocab_size: int, n: int) -> np.ndarray:
    counts = np.bincount(np.concatenate([np.asarray(t, dtype=np.int64) for t in targets]), minlength=vocab_size)
    return np.argsort(-counts, kind="stable")[:n]


def _from_pairs(source: np.ndarray, target: np.ndarray, vocab_size: int, always: np.ndarray) -> Shortlist:
    """A shortlist from (source id, target id) pairs, duplicates dropped."""
    pairs = np.unique(source * vocab_size + target)
    source, target = np.divmod(pairs, vocab_size)
    offsets = np.concatenate([[0], np.cumsum(np.bincount(source, minlength=vocab_size))]).astype(np.int64)
    return Shortlist(offsets, target.astype(np.int64), always.astype(np.int64), vocab_size)


def shortlist_graph_name(decoder: str, kind: str) -> str:
    """decoder.int8.onnx -> decoder.shortlist.int8.onnx (kind "decoder") or projection.shortlist.int8.onnx"""
    _, _, rest = decoder.partition(".")
    return f"{kind}.shortlist.{rest}"


def add_shortlist(
    model_dir: Path, shortlist: Shortlist, enabled: bool, built: dict[str, Any], manifest: Manifest
) -> Manifest:
    """Write the shortlist and each variant's shortlist graphs into the directory, then its manifest."""
    shortlist.save(model_dir / SHORTLIST_FILE)
    decoders = {name: shortlist_graph_name(v.decoder, "decoder") for name, v in manifest.variants.items()}
    projections = {name: shortlist_graph_name(v.decoder, "projection") for name, v in manifest.variants.items()}
    for name, variant in manifest.variants.items():
        write_shortlist_graphs(
            model_dir / variant.decoder,
            model_dir / decoders[name],
            model_dir / projections[name],
            manifest.vocab_size,
        )
    written = (SHORTLIST_FILE, *decoders.values(), *projections.values())
    files = {**manifest.files, **{f: sha256_file(model_dir / f) for f in written}}
    updated = replace(
        manifest,
        files=dict(sorted(files.items())),
        shortlist=ShortlistFiles(SHORTLIST_FILE, decoders, projections, enabled, built),
    )
    write_manifest(model_dir, updated)
    return updated


def shortlist_from_corpus(
    model_dir: Path, corpus: Path, split: str, top_k: int, frequent: int, enabled: bool
) -> Manifest:
    """Build the shortlist of a model directory from a corpus split and add it to the directory."""
    manifest = read_manifest(model_dir)
    tokenizer = spm.SentencePieceProcessor(model_file=str(model_dir / manifest.tokenizer))
    source, target = read_parallel(corpus, split, manifest.source_language, manifest.target_language)
    ids = manifest.special_ids
    shortlist = build_shortlist(
        tokenizer.encode(source), tokenizer.encode(target), manifest.vocab_size, top_k, frequent, [ids.eos, ids.unk]
    )
    built = {
        "corpus": str(corpus),
        "split": split,
        "pairs": len(source),
        "score": "Dice coefficient of sentence co-occurrence",
        "top_k": top_k,
        "frequent": frequent,
        "identity": True,
    }
    return add_shortlist(model_dir, shortlist, enabled, built, manifest)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m model.shortlist", description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, required=True)
    parser.add_argument("--corpus", type=Path, required=True, help="directory of the parallel corpus")
    parser.add_argument("--pair", help="source-target languages, e.g. en-fr (default: the manifest's)")
    parser.add_argument("--split", default="train")
    parser.add_argument("--top-k", type=int, default=DEFAULT_TOP_K, help="candidates per source subword")
    parser.add_argument("--frequent", type=int, default=DEFAULT_FREQUENT, help="most frequent target subwords")
    parser.add_argument("--enable", action="store_true", help="the engine uses the shortlist unless told not to")
    args = parser.parse_args(argv)
    try:
        _check_pair(args.model_dir, args.pair)
        manifest = shortlist_from_corpus(
            args.model_dir, args.corpus, args.split, args.top_k, args.frequent, args.enable
        )
    except (ModelLoadError, CorpusError, ShortlistGraphError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    assert manifest.shortlist is not None
    state = "enabled" if manifest.shortlist.enabled else "off by default"
    graphs = [*manifest.shortlist.decoders.values(), *manifest.shortlist.projections.values()]
    print(f"added {SHORTLIST_FILE} and {', '.join(graphs)} to {args.model_dir} ({state})")
    return 0


def _check_pair(model_dir: Path, pair: str | None) -> None:
    """`--pair` must name the model's own languages."""
    manifest = read_manifest(model_dir)
    own = f"{manifest.source_language}-{manifest.target_language}"
    if pair is not None and pair != own:
        raise ValueError(f"--pair {pair} does not match the model in {model_dir}, which translates {own}")


if __name__ == "__main__":
    sys.exit(main())
