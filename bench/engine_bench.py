"""Offline engine benchmark: sentences/s and target tokens/s of our onnxruntime engine against the PyTorch
reference (with and without the key/value cache) and CTranslate2, all on the same weights.

    python -m bench.engine_bench --model-dir models/en-fr --checkpoint runs/en-fr/best.pt
    python -m bench.engine_bench --model-dir <an export with fp16> --cuda   # also on CUDA (onnxruntime-gpu)
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from tqdm import tqdm

from bench.machine import benchmark_sentences, describe_machine
from service.decoding.engine import CPU, Engine
from service.decoding.iobinding import CUDA
from service.decoding.manifest import read_manifest
from service.types import DecodeOptions

MAX_LENGTH_A, MAX_LENGTH_B = 1.5, 10
SEARCHES = {"greedy": 1, "beam 4": 4}
TranslateBatch = Callable[[list[str]], int]  # translates a batch, returns the number of target tokens


@dataclass
class Measurement:
    """Throughput of one engine setting at one batch size."""

    engine: str
    setting: str
    search: str
    batch_size: int
    sentences_per_s: float
    target_tokens_per_s: float


def measure(translate: TranslateBatch, sentences: Sequence[str], batch_size: int) -> tuple[float, float]:
    """Sentences/s and target tokens/s over all `sentences`, in batches, after one warm-up batch."""
    translate(list(sentences[:batch_size]))
    tokens, start = 0, time.perf_counter()
    for i in range(0, len(sentences), batch_size):
        tokens += translate(list(sentences[i : i + batch_size]))
    elapsed = time.perf_counter() - start
    return len(sentences) / elapsed, tokens / elapsed


def onnxruntime_engines(
    model_dir: Path, variants: Sequence[str], intra_op_threads: int = 0, provider: str = CPU
) -> dict[str, Callable[[int], TranslateBatch]]:
    """Our engine on `provider`, one entry per model variant (fp32, int8; fp16 on CUDA) and decoder interface:
    "int8 inplace" is the in-place step graph (CPU only), "int8 concat" the concatenating fallback (the only one of
    a directory exported without it)."""
    engines = {}
    for variant in variants:
        has_step = read_manifest(model_dir).variants[variant].step_decoder and provider == CPU
        for interface in ["inplace", "concat"] if has_step else ["concat"]:
            engine = Engine.load(model_dir, (provider,), intra_op_threads, variant, interface=interface)
            if engine.provider != provider:
                raise SystemExit(f"error: onnxruntime could not run {provider} here (see the warning above)")
            engines[f"{variant} {interface}"] = translator(engine)
    return engines


def translator(engine: Engine, no_repeat_ngram_size: int = 0) -> Callable[[int], TranslateBatch]:
    """For a beam size, a function translating a batch with `engine` and returning its target tokens (with the
    repeat guard of this n-gram size: 0, none, as CTranslate2 runs here)."""

    def make(beam: int) -> TranslateBatch:
        options = DecodeOptions(beam_size=beam, no_repeat_ngram_size=no_repeat_ngram_size)
        return lambda texts: sum(len(t.best.token_ids) for t in engine.translate(texts, options))

    return make


def cpu_variants(model_dir: Path) -> list[str]:
    """The variants of a model directory that are meant for the CPU (fp32, int8), in that order."""
    present = read_manifest(model_dir).variants
    return [variant for variant in ("fp32", "int8") if variant in present]


def cuda_variants(model_dir: Path) -> list[str]:
    """The variants of a model directory worth running on CUDA (fp16, fp32), in that order."""
    present = read_manifest(model_dir).variants
    return [variant for variant in ("fp16", "fp32") if variant in present]


def torch_engines(checkpoint: Path) -> dict[str, Callable[[int], TranslateBatch]]:
    """The PyTorch reference decoder, with the key/value cache and recomputing the whole prefix."""
    from bench.nocache import RecomputingTorchDecoder
    from model.checkpoint import load_checkpoint, model_from_checkpoint
    from model.reference import TorchIncrementalDecoder, translate_ids
    from model.tokenizer import BOS_ID, EOS_ID, load_tokenizer

    state = load_checkpoint(checkpoint)
    model, tokenizer = model_from_checkpoint(state), load_tokenizer(state["tokenizer_model"])

    def make(factory: type) -> Callable[[int], TranslateBatch]:
        def with_beam(beam: int) -> TranslateBatch:
            def translate(texts: list[str]) -> int:
                ids = [tokenizer.encode(t) + [EOS_ID] for t in texts]
                results = translate_ids(model, ids, BOS_ID, EOS_ID, beam_size=beam, decoder_factory=factory)
                return sum(len(r[0].token_ids) for r in results)

            return translate

        return with_beam

    return {"cache": make(TorchIncrementalDecoder), "no cache": make(RecomputingTorchDecoder)}


def ctranslate2_engines(checkpoint: Path, workdir: Path) -> dict[str, Callable[[int], TranslateBatch]]:
    """CTranslate2 on the converted checkpoint, at each compute type and thread count worth trying."""
    import ctranslate2

    from bench.ct2_convert import convert_checkpoint

    model_dir, tokenizer = convert_checkpoint(checkpoint, workdir / "ctranslate2")
    engines = {}
    for compute_type in ("int8", "float32"):
        for threads in (1, 2):
            translator = ctranslate2.Translator(str(model_dir), compute_type=compute_type, intra_threads=threads)

            def make(beam: int, translator: ctranslate2.Translator = translator) -> TranslateBatch:
                def translate(texts: list[str]) -> int:
                    pieces = [tokenizer.encode(t, out_type=str) + ["</s>"] for t in texts]
                    limit = int(MAX_LENGTH_A * max(map(len, pieces)) + MAX_LENGTH_B)  # the engine's own cap
                    results = translator.translate_batch(pieces, beam_size=beam, max_decoding_length=limit)
                    return sum(len(r.hypotheses[0]) for r in results)

                return translate

            engines[f"{compute_type}, {threads} thread{'s' if threads > 1 else ''}"] = make
    return engines


def run(
    families: dict[str, dict[str, Callable[[int], TranslateBatch]]],
    sentences: Sequence[str],
    batch_sizes: Sequence[int],
    rounds: int = 1,
    searches: Sequence[str] = tuple(SEARCHES),
) -> list[Measurement]:
    """Every engine setting x search x batch size, `rounds` times, with a progress bar. The settings of one search
    and batch size alternate, round after round, so a machine busy at times slows each of them alike."""
    plan = [
        (family, setting, search, batch)
        for search in searches
        for batch in batch_sizes
        for _ in range(rounds)
        for family, settings in families.items()
        for setting in settings
        if not (setting == "no cache" and search != "greedy")
    ]
    rows = []
    with tqdm(plan, desc="benchmark", unit="setting") as progress:
        for family, setting, search, batch in progress:
            progress.set_postfix_str(f"{family} {setting} {search} batch {batch}")
            translate = families[family][setting](SEARCHES[search])
            rows.append(Measurement(family, setting, search, batch, *measure(translate, sentences, batch)))
    return rows


def markdown_table(rows: Sequence[Measurement]) -> str:
    lines = [
        "| engine | setting | search | batch | sentences/s | target tokens/s |",
        "|---|---|---|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r.engine} | {r.setting} | {r.search} | {r.batch_size} | {r.sentences_per_s:.1f} "
            f"| {r.target_tokens_per_s:.0f} |"
        )
    return "\n".join(lines)


def plot(rows: Sequence[Measurement], path: Path) -> None:
    """Sentences/s against batch size, one line per engine setting, one panel per search."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    settings = list(dict.fromkeys((r.engine, r.setting) for r in rows))
    colors = dict(zip(settings, plt.get_cmap("tab10").colors, strict=False))  # one color per setting, both panels
    fig, axes = plt.subplots(1, len(SEARCHES), figsize=(13, 4.5), sharey=True)
    for ax, search in zip(axes, SEARCHES, strict=True):
        for name in settings:
            points = [r for r in rows if (r.engine, r.setting) == name and r.search == search]
            if points:
                x, y = [p.batch_size for p in points], [p.sentences_per_s for p in points]
                ax.plot(x, y, marker="o", color=colors.get(name), label=" ".join(name))
        ax.set(title=search, xlabel="batch size (sentences)", xscale="log", yscale="log")
        ax.set_xticks([r.batch_size for r in rows], [str(r.batch_size) for r in rows])
    axes[0].set_ylabel("sentences / s")
    fig.legend(*axes[0].get_legend_handles_labels(), loc="center right", fontsize=8)  # greedy has every setting
    fig.tight_layout(rect=(0, 0, 0.84, 1))
    fig.savefig(path, dpi=120)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", type=Path, default=Path("models/en-fr"))
    parser.add_argument("--checkpoint", type=Path, help="the checkpoint the model directory was exported from")
    parser.add_argument(
        "--without-pytorch", action="store_true", help="with --checkpoint: CTranslate2 only (a head-to-head)"
    )
    parser.add_argument("--sentences", type=int, default=256, help="source sentences per measurement")
    parser.add_argument("--text-file", type=Path, help="sentences, one a line (default: Multi30k test)")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8, 32, 64])
    parser.add_argument("--variants", nargs="+", help="default: the model directory's fp32 and int8, if there")
    parser.add_argument("--cuda", action="store_true", help="also our engine on CUDAExecutionProvider")
    parser.add_argument("--cuda-variants", nargs="+", help="with --cuda; default: the directory's fp16 and fp32")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: all cores)")
    parser.add_argument("--intra-op-threads", type=int, default=0, help="onnxruntime threads (0: automatic)")
    parser.add_argument("--rounds", type=int, default=1, help="measurements of each setting, alternating")
    parser.add_argument("--searches", nargs="+", choices=list(SEARCHES), default=list(SEARCHES))
    parser.add_argument("--output", type=Path, default=Path("results/engine"))
    args = parser.parse_args(argv)

    sentences = benchmark_sentences(args.model_dir, args.text_file, args.sentences)[: args.sentences]
    variants = args.variants or cpu_variants(args.model_dir)
    scratch = Path(tempfile.mkdtemp(prefix="engine-bench-"))  # the converted CTranslate2 model: not a result
    families = {"onnxruntime": onnxruntime_engines(args.model_dir, variants, args.intra_op_threads)}
    if args.cuda:
        on_cuda = args.cuda_variants or cuda_variants(args.model_dir)
        families["onnxruntime CUDA"] = onnxruntime_engines(args.model_dir, on_cuda, args.intra_op_threads, CUDA)
    if args.checkpoint:
        if args.threads:
            import torch

            torch.set_num_threads(args.threads)
        if not args.without_pytorch:
            families["pytorch"] = torch_engines(args.checkpoint)
        families["ctranslate2"] = ctranslate2_engines(args.checkpoint, scratch)
    rows = run(families, sentences, args.batch_sizes, args.rounds, args.searches)

    args.output.mkdir(parents=True, exist_ok=True)
    machine = describe_machine()
    threads = {"onnxruntime_intra_op_threads": args.intra_op_threads, "torch_threads": args.threads}
    report = {
        "machine": machine,
        "sentences": len(sentences),
        "rounds": args.rounds,
        **threads,
        "rows": [asdict(r) for r in rows],
    }
    (args.output / "engine_bench.json").write_text(json.dumps(report, indent=2))
    table = (
        f"{machine['summary']}, {len(sentences)} sentences per measurement,"
        f" onnxruntime intra_op_threads={args.intra_op_threads} (0: automatic)\n\n{markdown_table(rows)}\n"
    )
    (args.output / "engine_bench.md").write_text(table)
    plot(rows, args.output / "engine_bench.png")
    print(table)


if __name__ == "__main__":
    main()
