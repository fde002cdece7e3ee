"""Command line: `python -m model train | evaluate | translate | pipeline` (see `--help` of each)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from model.checkpoint import CheckpointError, load_checkpoint, model_from_checkpoint
from model.config import ConfigError, load_config
from model.data import CorpusError, read_parallel
from model.evaluate import decoding_name, score, translate_lines
from model.export import ExportError
from model.pipeline import STAGES, PipelineError, run_pipeline
from model.tokenizer import load_tokenizer
from model.train import train
from service.decoding.manifest import ModelLoadError

USAGE_ERROR = 2  # exit status of a bad config, corpus, checkpoint or model directory


def train_command(args: argparse.Namespace) -> None:
    train(load_config(args.config, args.set), resume=args.resume)


def evaluate_command(args: argparse.Namespace) -> None:
    """Greedy and beam sacreBLEU/chrF of a checkpoint on one split; hypotheses written next to the checkpoint."""
    state = load_checkpoint(args.checkpoint)
    model, tokenizer = model_from_checkpoint(state), load_tokenizer(state["tokenizer_model"])
    source, target = state["source_language"], state["target_language"]
    corpus_dir = args.data_dir or Path(state["data"]["corpus_dir"])
    sources, references = read_parallel(corpus_dir, args.split, source, target)
    for beam_size in sorted({1, args.beam_size}):
        hypotheses = translate_lines(model, tokenizer, sources, beam_size, args.length_penalty, args.batch_sentences)
        name = decoding_name(beam_size)
        output = args.checkpoint.with_name(f"{args.checkpoint.stem}.{args.split}.{source}-{target}.{name}.txt")
        output.write_text("".join(h + "\n" for h in hypotheses), encoding="utf-8")
        scores = score(hypotheses, references)
        print(f"{name:>7}: BLEU {scores.bleu:.2f}  chrF {scores.chrf:.2f}  ({output})")
        print(f"         {scores.bleu_signature}\n         {scores.chrf_signature}")


def translate_command(args: argparse.Namespace) -> None:
    """Translate the given sentences, or stdin line by line, with the PyTorch reference decoder."""
    state = load_checkpoint(args.checkpoint)
    model, tokenizer = model_from_checkpoint(state), load_tokenizer(state["tokenizer_model"])
    lines = args.text or [line.rstrip("\n") for line in sys.stdin]
    for translation in translate_lines(model, tokenizer, lines, args.beam_size, args.length_penalty):
        print(translation)


def pipeline_command(args: argparse.Namespace) -> None:
    statuses = run_pipeline(
        args.config, args.output, args.set, args.run_dir, args.stop_after, args.threads, args.models_root
    )
    print("pipeline: " + ", ".join(f"{stage} {status}" for stage, status in statuses.items()))


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="python -m model", description=__doc__)
    commands = root.add_subparsers(dest="command", required=True)

    train = commands.add_parser("train", help="train a model from a YAML config")
    train.add_argument("--config", type=Path, required=True)
    train.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="override, e.g. optim.lr=0.001")
    train.add_argument("--resume", action="store_true", help="continue exactly from run.output_dir/last.pt")
    train.set_defaults(run=train_command)

    evaluate = commands.add_parser("evaluate", help="BLEU and chrF of a checkpoint on a corpus split")
    evaluate.add_argument("--checkpoint", type=Path, required=True)
    evaluate.add_argument("--split", default="test_2016_flickr")
    evaluate.add_argument("--data-dir", type=Path, default=None, help="corpus dir (default: the training one)")
    evaluate.add_argument("--batch-sentences", type=int, default=64)
    evaluate.set_defaults(run=evaluate_command)

    translate = commands.add_parser("translate", help="translate text (arguments, or stdin lines)")
    translate.add_argument("--checkpoint", type=Path, required=True)
    translate.add_argument("text", nargs="*")
    translate.set_defaults(run=translate_command)

    pipeline = commands.add_parser(
        "pipeline", help="tokenizer, training, export, evaluation and model card of one language pair"
    )
    pipeline.add_argument("--config", type=Path, required=True)
    pipeline.add_argument(
        "--output", type=Path, help="the model directory (default: MODELS_ROOT/<source>-<target> of the config)"
    )
    pipeline.add_argument("--models-root", type=Path, default=Path("models"), help="where --output defaults to")
    pipeline.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="override, e.g. optim.lr=0.001")
    pipeline.add_argument(
        "--run-dir", type=Path, help="bundle this existing training run as it is (no training); default: train"
    )
    pipeline.add_argument("--stop-after", choices=STAGES, default=STAGES[-1], help="last stage to run")
    pipeline.add_argument("--threads", type=int, default=0, help="onnxruntime threads for evaluation (0: all cores)")
    pipeline.set_defaults(run=pipeline_command)

    for command in (evaluate, translate):
        command.add_argument("--beam-size", type=int, default=4 if command is evaluate else 1)
        command.add_argument("--length-penalty", type=float, default=1.0)
    return root


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    try:
        args.run(args)
    except (ConfigError, CorpusError, CheckpointError, ExportError, ModelLoadError, PipelineError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(USAGE_ERROR)


if __name__ == "__main__":
    main()
