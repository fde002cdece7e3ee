"""The offline pipeline of one language pair in one command: tokenizer, training, checkpoint choice and ONNX export,
evaluation through the service's engine, keeping only the served variant (int8), model card.

    python -m model pipeline --config model/configs/multi30k_en_fr.yaml --output models/en-fr

Before any stage, every split the pipeline will read (training, validation, the config's `data.test_splits`) is
read once, so that a missing, empty or misaligned corpus file stops it at once rather than hours later.

Each stage is skipped when its output exists and is up to date, so a stopped pipeline resumes where it stopped
(training itself continues from last.pt, as `train --resume` does). `--run-dir DIR` bundles a run trained
elsewhere as it is: no training happens in DIR (its trainer may still be writing there); to train or resume in
a chosen directory, set run.output_dir instead.

The evaluation writes `scores["test"]` of manifest.json:

    decoding:   name -> Decoding settings ("greedy", "beam4")
    results:    test split -> variant -> decoding name -> {"bleu", "chrf"}
    signatures: {"bleu", "chrf"}: sacreBLEU's signatures
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from model.card import CARD_FILE, quality_gates, render_card
from model.checkpoint import load_checkpoint
from model.config import PROJECT_ROOT, TrainConfig, build_config, load_config
from model.data import read_parallel
from model.evaluate import Decoding, engine_scores
from model.export import default_version, export_model
from model.train import Distributed, Position, finished, prepare_tokenizer
from model.train import train as run_training
from service.decoding.engine import Engine
from service.decoding.manifest import MANIFEST_FILE, read_manifest, sha256_file, write_manifest

STAGES = ("tokenizer", "train", "export", "evaluate", "ship", "card")
DONE, SKIPPED = "done", "skipped"
EXPORT_VARIANTS = ("fp32", "int8")
EVAL_VARIANTS = ("int8", "fp32")
SHIPPED_VARIANTS = ("int8",)  # what the model directory keeps: the CPU default, a third of fp32's size
DECODINGS = (Decoding(beam_size=1), Decoding(beam_size=4))
CANDIDATES = ("best.pt", "averaged.pt")  # in order of preference when they validate equally


class PipelineError(Exception):
    """The pipeline cannot go on: e.g. a run directory without a checkpoint to export."""


@dataclass
class Outcome:
    """What a stage did: DONE or SKIPPED, and a line saying what or why."""

    status: str
    detail: str


class Pipeline:
    """The stages of one language pair: the run directory comes from the config, the model directory is `output`."""

    def __init__(self, cfg: TrainConfig, config_path: Path, output: Path, bundled_run: bool = False, threads: int = 0):
        self.cfg, self.config_path, self.output = cfg, Path(config_path), Path(output)
        self.bundled_run = bundled_run  # an existing run, taken as it is (never trained in)
        self.threads = threads  # onnxruntime intra-op threads for the evaluation; 0: all cores
        self.run_dir = cfg.run.output_dir

    def run(self, stop_after: str = STAGES[-1]) -> dict[str, str]:
        """Run (or skip) the stages up to `stop_after`, printing each one's outcome; returns their statuses."""
        stages: dict[str, Callable[[], Outcome]] = {
            "tokenizer": self.tokenizer,
            "train": self.train,
            "export": self.export,
            "evaluate": self.evaluate,
            "ship": self.ship,
            "card": self.card,
        }
        chosen = STAGES[: STAGES.index(stop_after) + 1]
        self.check_corpus(chosen)
        statuses = {}
        for number, name in enumerate(chosen, 1):
            print(f"[{number}/{len(STAGES)}] {name} ...", flush=True)
            outcome = stages[name]()
            print(f"[{number}/{len(STAGES)}] {name}: {outcome.status}: {outcome.detail}", flush=True)
            statuses[name] = outcome.status
        return statuses

    def check_corpus(self, stages: tuple[str, ...]) -> None:
        """Read every split that `stages` will read (a bundled run is not trained); print their sizes."""
        data = self.cfg.data
        splits = [data.train_split, data.val_split] if "train" in stages and not self.bundled_run else []
        splits += data.test_splits if "evaluate" in stages else []
        if not splits:
            return
        sizes = [
            f"{split} {len(read_parallel(data.corpus_dir, split, data.source_language, data.target_language)[0]):,}"
            for split in dict.fromkeys(splits)
        ]
        print(f"corpus {data.corpus_dir} ({data.source_language}-{data.target_language}): {', '.join(sizes)} pairs")

    def tokenizer(self) -> Outcome:
        path = self.run_dir / "tokenizer.model"
        if self.bundled_run:
            return Outcome(SKIPPED, f"bundled run {self.run_dir}: its checkpoints hold their tokenizer")
        if self.cfg.run.init_from:
            return Outcome(SKIPPED, f"fine-tuning: the tokenizer of {self.cfg.run.init_from}")
        if path.exists():
            return Outcome(SKIPPED, f"{path} exists")
        prepare_tokenizer(self.cfg, self.run_dir, Distributed())
        return Outcome(DONE, f"wrote {path}")

    def train(self) -> Outcome:
        last = self.run_dir / "last.pt"
        if self.bundled_run:
            return Outcome(SKIPPED, f"bundled run {self.run_dir}: {bundled_progress(self.run_dir)}")
        if last.exists() and (step := self.trained_to()) is not None:
            return Outcome(SKIPPED, f"{last} is at step {step}: the configured limit")
        resume = last.exists()
        run_training(self.cfg, resume=resume)
        if (step := self.trained_to()) is None:
            raise PipelineError(f"training stopped before its limit; run the pipeline again to resume from {last}")
        return Outcome(DONE, f"{'resumed and ' if resume else ''}trained to step {step} in {self.run_dir}")

    def trained_to(self) -> int | None:
        """The step of last.pt if training has reached the configured limit, else None."""
        position = Position(**load_checkpoint(self.run_dir / "last.pt")["position"])
        return position.step if finished(self.cfg.optim, position) else None

    def export(self) -> Outcome:
        chosen, candidates = choose_checkpoint(self.run_dir)
        choice = ", ".join(f"{name} {bleu:.2f}" for name, bleu in candidates.items())
        if self.exported_checkpoint() == sha256_file(chosen):
            return Outcome(SKIPPED, f"{self.output} holds {chosen.name} already (validation BLEU: {choice})")
        export_model(chosen, self.output, self.output.name, default_version(), EXPORT_VARIANTS, overwrite=True)
        manifest = read_manifest(self.output)
        training = manifest.training
        command = reproduce_command(self.config_path, training["config"], self.output, training["step"])
        record = {"candidates": candidates, "command": command}
        write_manifest(self.output, replace(manifest, training={**manifest.training, "pipeline": record}))
        return Outcome(DONE, f"{chosen} -> {self.output} (validation BLEU: {choice})")

    def exported_checkpoint(self) -> str | None:
        """sha256 of the checkpoint the model directory was exported from, if this pipeline completed the export."""
        if not (self.output / MANIFEST_FILE).exists():
            return None
        manifest = read_manifest(self.output)
        return manifest.training.get("checkpoint_sha256") if "pipeline" in manifest.training else None

    def evaluate(self) -> Outcome:
        manifest = read_manifest(self.output)
        splits = self.cfg.data.test_splits
        if evaluated(manifest.scores.get("test", {}), splits):
            return Outcome(SKIPPED, f"{self.output / MANIFEST_FILE} has the test scores")
        test = evaluate_model_dir(self.output, self.cfg.data.corpus_dir, splits, self.threads)
        write_manifest(self.output, replace(manifest, scores={**manifest.scores, "test": test}))
        return Outcome(DONE, f"{len(splits) * len(EVAL_VARIANTS) * len(DECODINGS)} scores in {MANIFEST_FILE}")

    def card(self) -> Outcome:
        manifest = read_manifest(self.output)
        path, text = self.output / CARD_FILE, render_card(manifest)
        gates = ", ".join(
            f"{g.decoding} >= {g.required:g} {'met' if g.met else 'NOT met'}" for g in quality_gates(manifest)
        )
        summary = f"quality gate {gates}" if gates else "no quality gate for this pair"
        if path.exists() and path.read_text(encoding="utf-8") == text:
            return Outcome(SKIPPED, f"{path} is up to date; {summary}")
        path.write_text(text, encoding="utf-8")
        return Outcome(DONE, f"wrote {path}; {summary}")

    def ship(self) -> Outcome:
        manifest = read_manifest(self.output)
        extra = [name for name in manifest.variants if name not in SHIPPED_VARIANTS]
        if not extra:
            return Outcome(SKIPPED, f"{self.output} holds only {', '.join(manifest.variants)}")
        write_manifest(self.output, manifest.without_variants(extra))  # unlist first: a crash leaves spare files
        for name in extra:
            for file in manifest.variants[name].files:
                (self.output / file).unlink()
        size = sum(f.stat().st_size for f in self.output.iterdir()) / 2**20
        return Outcome(DONE, f"removed {', '.join(extra)} (scores kept in the manifest); {self.output}: {size:.1f} MiB")


def bundled_progress(run_dir: Path) -> str:
    """How far a run trained elsewhere got, by its own configuration (it may still be training)."""
    last = run_dir / "last.pt"
    if not last.exists():
        return "no last.pt"
    state = load_checkpoint(last)
    optim = build_config(state["train_config"]).optim
    done = "finished" if finished(optim, Position(**state["position"])) else "NOT finished"
    return f"last.pt at step {state['step']} of {optim.max_steps or 'unlimited'} ({done})"


def choose_checkpoint(run_dir: Path) -> tuple[Path, dict[str, float]]:
    """averaged.pt if it validates better than best.pt, else best.pt; with each candidate's validation BLEU."""
    candidates = {
        name: float(load_checkpoint(run_dir / name)["metrics"]["val_bleu"])
        for name in CANDIDATES
        if (run_dir / name).exists()
    }
    if "best.pt" not in candidates:
        raise PipelineError(f"{run_dir} has no best.pt: not a training run, or it has not validated yet")
    return run_dir / max(candidates, key=candidates.__getitem__), candidates


def evaluated(test: dict[str, Any], splits: list[str]) -> bool:
    """Whether recorded test scores cover every split, variant and decoding, with today's decoding settings."""
    results = test.get("results", {})
    return test.get("decoding") == {d.name: asdict(d) for d in DECODINGS} and all(
        d.name in results.get(split, {}).get(variant, {})
        for split in splits
        for variant in EVAL_VARIANTS
        for d in DECODINGS
    )


def evaluate_model_dir(model_dir: Path, corpus_dir: Path, splits: list[str], threads: int = 0) -> dict[str, Any]:
    """sacreBLEU and chrF of every variant on every test split with every decoding, through the engine."""
    results: dict[str, Any] = {split: {} for split in splits}
    for variant in EVAL_VARIANTS:
        engine = Engine.load(model_dir, variant=variant, intra_op_threads=threads)
        for split in splits:
            for decoding in DECODINGS:
                scores = engine_scores(engine, corpus_dir, split, decoding)
                print(f"    {split} {variant} {decoding.name}: BLEU {scores.bleu:.2f}  chrF {scores.chrf:.2f}")
                results[split].setdefault(variant, {})[decoding.name] = {
                    "bleu": round(scores.bleu, 2),
                    "chrf": round(scores.chrf, 2),
                }
    return {
        "decoding": {d.name: asdict(d) for d in DECODINGS},
        "results": results,
        "signatures": {"bleu": scores.bleu_signature, "chrf": scores.chrf_signature},
    }


def reproduce_command(config_path: Path, trained_config: dict[str, Any], output: Path, step: int) -> str:
    """The pipeline command that trains this configuration again: the config file, plus `--set` for every
    setting the run had differently (its output directory aside), with max_steps the `step` the exported
    checkpoint was taken at (a run stopped early is reproduced by stopping there: the learning rate schedule
    does not depend on max_steps)."""
    base = flat(load_config(config_path).to_dict())
    trained = flat(trained_config) | {"optim.max_steps": step}
    changed = {key: value for key, value in trained.items() if key != "run.output_dir" and base.get(key) != value}
    command = ["python", "-m", "model", "pipeline", "--config", shown(config_path), "--output", shown(output)]
    if changed:
        command += ["--set", *(f"{key}={yaml_scalar(value)}" for key, value in changed.items())]
    return shlex.join(command)


def flat(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{'optim': {'lr': 0.001}} -> {'optim.lr': 0.001}."""
    items: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            items |= flat(value, f"{prefix}{key}.")
        else:
            items[f"{prefix}{key}"] = value
    return items


def yaml_scalar(value: Any) -> str:
    """A value as a `--set` override reads it back (YAML flow style: 1.0e-09, [0.9, 0.98], true)."""
    if isinstance(value, str):
        return value
    return yaml.safe_dump(value, default_flow_style=True).removesuffix("\n...\n").strip()


def shown(path: Path) -> str:
    """A path as a command line in the project root would name it."""
    path = Path(path).resolve()
    return str(path.relative_to(PROJECT_ROOT)) if path.is_relative_to(PROJECT_ROOT) else str(path)


def run_pipeline(
    config_path: Path,
    output: Path | None,
    overrides: list[str] = (),
    run_dir: Path | None = None,
    stop_after: str = STAGES[-1],
    threads: int = 0,
    models_root: Path = Path("models"),
) -> dict[str, str]:
    """Build the pipeline from a config file (and `--set` overrides) and run it; returns each stage's status.

    Without `output`, the model directory is `models_root/{source}-{target}` of the config's pair."""
    if run_dir is not None:
        overrides = [*overrides, f"run.output_dir={Path(run_dir).resolve()}"]
    cfg = load_config(config_path, overrides)
    if run_dir is not None and not cfg.run.output_dir.is_dir():
        raise PipelineError(f"run directory {cfg.run.output_dir} does not exist")
    output = output or Path(models_root) / f"{cfg.data.source_language}-{cfg.data.target_language}"
    return Pipeline(cfg, config_path, output, bundled_run=run_dir is not None, threads=threads).run(stop_after)
