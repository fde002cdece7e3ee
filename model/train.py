"""Training the Transformer with teacher forcing on a parallel corpus.

Teacher forcing: the decoder reads the gold target shifted right (bos first) and at every position
predicts the next gold token (the target shifted left, eos last), all positions in one pass under the
causal mask. The loss is label-smoothed cross-entropy over real (non-pad) target tokens; Adam with a
linear warm-up then inverse-square-root decay; gradient clipping; dropout inside the model.

Every `run.val_every` steps: validation loss, sacreBLEU and chrF of greedy translations of the
validation set, then `last.pt` (and `best.pt` when BLEU improved). `--resume` continues from `last.pt`
exactly: same data order, same dropout masks, same weights as a run that never stopped.
Under `torchrun` each process trains on its own shard of every epoch's batches (DistributedDataParallel);
rank 0 logs, validates and saves.
"""

from __future__ import annotations

import contextlib
import os
import platform
import random
import shutil
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import sentencepiece as spm
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from model.augment import SubwordSampler, case_augmented
from model.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from model.config import OptimSettings, TrainConfig
from model.data import (
    Batch,
    CorpusError,
    FilterCounts,
    Pair,
    bucketed_batches,
    collate,
    epoch_batches,
    filter_pairs,
    pair_lengths,
    read_parallel,
)
from model.evaluate import score, translate_lines
from model.metrics_log import MetricsLog
from model.model import Transformer
from model.tokenizer import PAD_ID, VocabularySizeError, load_tokenizer, train_tokenizer


@dataclass
class Distributed:
    """This process's place in a (possibly single-process) training job."""

    rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.world_size > 1:
            dist.barrier()


def pick_device(setting: str) -> torch.device:
    """'auto' takes CUDA when present; under torchrun each process takes the GPU of its LOCAL_RANK."""
    if setting == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("run.device is 'cuda' but no CUDA device is available")
    if setting == "cpu" or not torch.cuda.is_available():
        return torch.device("cpu")
    device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    torch.cuda.set_device(device)
    return device


def init_distributed(device: torch.device) -> Distributed:
    """Join the process group when started by torchrun (WORLD_SIZE > 1): nccl on CUDA, gloo on CPU."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size == 1:
        return Distributed()
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Distributed(dist.get_rank(), world_size)


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (Linux), else what `platform` reports."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    return platform.processor() or platform.machine()


def describe_hardware(device: torch.device, world_size: int) -> str:
    """What trains the model, as the model card reports it: the GPU's name, or the CPU's model, cores and threads."""
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:
        name = f"{cpu_model()}, {os.cpu_count()} cores ({torch.get_num_threads()} used by torch)"
    return f"{world_size} x {name}" if world_size > 1 else name


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch, so that weight init and dropout are repeatable."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def rng_states() -> dict[str, Any]:
    """Every random generator's state, for exact resume."""
    states = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def restore_rng_states(states: dict[str, Any]) -> None:
    random.setstate(states["python"])
    np.random.set_state(states["numpy"])
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def inverse_sqrt_schedule(warmup_steps: int) -> Callable[[int], float]:
    """Learning-rate factor: rises linearly to 1 over `warmup_steps`, then decays as 1/sqrt(step)."""

    def factor(step: int) -> float:
        step += 1  # LambdaLR counts from 0; the first update uses step 1
        return min(step / warmup_steps, (warmup_steps / step) ** 0.5)

    return factor


def teacher_forcing_loss(model: nn.Module, batch: Batch, label_smoothing: float) -> tuple[torch.Tensor, int]:
    """Summed cross-entropy of predicting each next gold token from the gold prefix; returns (sum, tokens)."""
    tgt_in, tgt_out = batch.tgt[:, :-1], batch.tgt[:, 1:]  # bos + y, y + eos: (B, T) each
    logits = model(batch.src, tgt_in)  # (B, T, V)
    loss = F.cross_entropy(
        logits.flatten(0, 1).float(),
        tgt_out.flatten(),
        ignore_index=PAD_ID,
        label_smoothing=label_smoothing,
        reduction="sum",
    )
    return loss, int((tgt_out != PAD_ID).sum())


def prepare_tokenizer(cfg: TrainConfig, run_dir: Path, dist_info: Distributed) -> bytes:
    """The run's joint BPE model: trained on both sides of the training split once, then reused from the run dir."""
    path = run_dir / "tokenizer.model"
    if dist_info.is_main and not path.exists():
        data = cfg.data
        src, tgt = read_split(cfg, data.train_split)
        print(f"training a {data.vocab_size}-piece BPE tokenizer on {2 * len(src)} sentences -> {path}")
        try:
            train_tokenizer(src + tgt, path, data.vocab_size)
        except VocabularySizeError as exc:
            raise CorpusError(
                f"data.vocab_size {data.vocab_size} is too {exc.size_word} for the {data.train_split!r} split of "
                f"{data.corpus_dir} ({len(src)} pairs): set it to {exc.allowed}"
                + (", or train on a larger corpus" if exc.too_large else "")
            ) from None
    dist_info.barrier()
    return path.read_bytes()


def read_split(cfg: TrainConfig, split: str) -> tuple[list[str], list[str]]:
    """The sentences of a split of the configured pair; the training split with its case variants, if configured."""
    data = cfg.data
    src, tgt = read_parallel(data.corpus_dir, split, data.source_language, data.target_language)
    if split != data.train_split:
        return src, tgt
    return case_augmented(src, tgt, data.upper_case_fraction, data.title_case_fraction, cfg.run.seed)


@dataclass
class Split:
    """A tokenized, filtered split; `source_lines`/`target_lines` are the raw text of every line."""

    pairs: list[Pair]
    counts: FilterCounts
    description: dict[str, Any]
    source_lines: list[str]
    target_lines: list[str]


def load_split(cfg: TrainConfig, split: str, tokenizer: spm.SentencePieceProcessor) -> Split:
    """Read, tokenize and length-filter one split of the configured language pair."""
    data = cfg.data
    src, tgt = read_split(cfg, split)
    pairs, counts = filter_pairs(
        tokenizer.encode(src), tokenizer.encode(tgt), data.max_sentence_tokens, data.max_length_ratio
    )
    if not counts.kept:
        raise CorpusError(f"no pair of the {split!r} split is left after filtering: {counts.summary()}")
    description = {
        "corpus_dir": str(data.corpus_dir),
        "split": split,
        "pair": f"{data.source_language}-{data.target_language}",
        "pairs_kept": counts.kept,
        "pairs_filtered": counts.read - counts.kept,
        "filter_counts": counts.to_dict(),
    }
    return Split(pairs, counts, description, src, tgt)


@dataclass
class Position:
    """Where training is: optimizer steps taken, current epoch, batches of that epoch already used."""

    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0
    best_bleu: float = float("-inf")


def finished(optim: OptimSettings, position: Position) -> bool:
    """Whether a run at `position` has reached the configured step or epoch limit."""
    return bool(optim.max_steps and position.step >= optim.max_steps) or bool(
        optim.max_epochs and position.epoch >= optim.max_epochs
    )


class Trainer:
    """Owns the model, optimizer, data and run directory of one training run."""

    def __init__(self, cfg: TrainConfig, resume: bool = False):
        self.cfg, self.run_dir = cfg, cfg.run.output_dir
        self.device = pick_device(cfg.run.device)
        self.dist = init_distributed(self.device)
        self.use_bf16 = cfg.run.bf16 and self.device.type == "cuda"
        if cfg.run.num_threads:
            torch.set_num_threads(cfg.run.num_threads)
        resume_state = self._resume_state(resume)
        init_state = load_checkpoint(cfg.run.init_from) if cfg.run.init_from and not resume_state else None
        self.started = time.perf_counter() - (resume_state or {}).get("train_seconds", 0.0)  # counts across resumes
        self.epoch_size = 0  # batches in the current epoch, once training is under way
        self.run_dir.mkdir(parents=True, exist_ok=True)
        start_state = resume_state or init_state
        self.tokenizer_model = (
            start_state["tokenizer_model"] if start_state else prepare_tokenizer(cfg, self.run_dir, self.dist)
        )
        self.tokenizer = load_tokenizer(self.tokenizer_model)
        self.train_split = load_split(cfg, cfg.data.train_split, self.tokenizer)
        self.val_split = load_split(cfg, cfg.data.val_split, self.tokenizer)
        self.train_lengths = pair_lengths(self.train_split.pairs)
        self.sampler = (
            SubwordSampler(self.tokenizer, cfg.data.bpe_dropout, cfg.data.max_sentence_tokens, cfg.run.seed)
            if cfg.data.bpe_dropout
            else None
        )
        seed_everything(cfg.run.seed)
        self.model = Transformer(cfg.model.to_model_config(self.tokenizer.get_piece_size(), PAD_ID)).to(self.device)
        self.optimizer = torch.optim.Adam(
            self.model.parameters(),
            lr=cfg.optim.lr,
            betas=cfg.optim.betas,
            eps=cfg.optim.eps,
            weight_decay=cfg.optim.weight_decay,
            fused=True,  # one kernel for all parameters: noticeably faster on CPU too
        )
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, inverse_sqrt_schedule(cfg.optim.warmup_steps)
        )
        self.position, self.metrics = Position(), {}
        if resume_state:
            self._restore(resume_state)
        elif init_state:
            self._initialize(init_state, cfg.run.init_from)
        self.parent: dict[str, Any] | None = None  # how the checkpoint it was fine-tuned from was trained
        if resume_state:
            self.parent = resume_state.get("init")
        elif init_state:
            self.parent = parent_record(init_state, cfg.run.init_from)
        self.ddp = (
            DistributedDataParallel(self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None)
            if self.dist.world_size > 1
            else None
        )
        self.log = MetricsLog(self.run_dir, self.position.step) if self.dist.is_main else None
        self.stop_requested = False

    def _resume_state(self, resume: bool) -> dict[str, Any] | None:
        """The checkpoint to continue from, or None for a fresh run (which must not overwrite one)."""
        last = self.run_dir / "last.pt"
        if resume:
            return load_checkpoint(last)
        if last.exists():
            raise CheckpointError(f"{last} exists: pass --resume to continue, or set run.output_dir to a new directory")
        return None

    def _initialize(self, state: dict[str, Any], path: Path | None) -> None:
        """Fine-tuning: the weights of another run's checkpoint; optimizer, schedule and position start afresh."""
        ours = {name: tuple(t.shape) for name, t in self.model.state_dict().items()}
        theirs = {name: tuple(t.shape) for name, t in state["model"].items()}
        differ = sorted(name for name in ours.keys() | theirs.keys() if ours.get(name) != theirs.get(name))
        if differ:
            first = differ[0]
            raise CheckpointError(
                f"run.init_from {path} does not fit the model settings: {len(differ)} weights differ, e.g. {first}"
                f" is {theirs.get(first, 'absent')} there and {ours.get(first, 'absent')} here"
            )
        self.model.load_state_dict(state["model"])

    def _restore(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.position = Position(**state["position"])
        self.metrics = state["metrics"]
        restore_rng_states(state["rng"])

    def say(self, message: str) -> None:
        if self.dist.is_main:
            tqdm.write(message)

    def autocast(self) -> contextlib.AbstractContextManager:
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.use_bf16)

    def train_step(self, batch: Batch) -> tuple[float, int]:
        """One optimizer update on one batch; returns its summed loss and target-token count."""
        model = self.ddp or self.model
        model.train()
        with self.autocast():
            loss_sum, n_tokens = teacher_forcing_loss(model, batch.to(self.device), self.cfg.optim.label_smoothing)
        self.optimizer.zero_grad(set_to_none=True)
        (loss_sum / max(n_tokens, 1)).backward()
        if self.cfg.optim.clip_norm > 0:
            nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.optim.clip_norm)
        self.optimizer.step()
        self.scheduler.step()
        return loss_sum.item(), n_tokens

    @torch.no_grad()
    def validation_loss(self, model: Transformer) -> float:
        """Per-token cross-entropy (no label smoothing) on the filtered validation pairs."""
        model.eval()
        pairs, total, tokens = self.val_split.pairs, 0.0, 0
        for indices in bucketed_batches(pair_lengths(pairs), self.cfg.optim.max_tokens, rng=None):
            with self.autocast():
                loss_sum, n_tokens = teacher_forcing_loss(model, collate(pairs, indices).to(self.device), 0.0)
            total, tokens = total + loss_sum.item(), tokens + n_tokens
        return total / max(tokens, 1)

    @torch.no_grad()
    def validate(self, model: Transformer | None = None) -> dict[str, float]:
        """Validation loss, and sacreBLEU/chrF of greedy translations of every validation sentence."""
        model = model or self.model
        loss = self.validation_loss(model)
        with self.autocast():
            hypotheses = translate_lines(
                model, self.tokenizer, self.val_split.source_lines, batch_sentences=self.cfg.run.val_batch_sentences
            )
        scores = score(hypotheses, self.val_split.target_lines)
        return {"val_loss": loss, "val_bleu": scores.bleu, "val_chrf": scores.chrf}

    def checkpoint_extra(self, resumable: bool = True) -> dict[str, Any]:
        """Everything besides the weights and tokenizer that a checkpoint holds; resumable adds optimizer state."""
        extra = {
            "source_language": self.cfg.data.source_language,
            "target_language": self.cfg.data.target_language,
            "step": self.position.step,
            "train_config": self.cfg.to_dict(),
            "metrics": dict(self.metrics),
            "data": self.train_split.description,
            "epochs": round(self.position.epoch + self.position.batch_in_epoch / max(self.epoch_size, 1), 2),
            "train_seconds": round(time.perf_counter() - self.started, 1),
            "hardware": describe_hardware(self.device, self.dist.world_size),
        }
        if self.parent:
            extra["init"] = self.parent
        if resumable:
            extra |= {
                "position": vars(self.position).copy(),
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "rng": rng_states(),
            }
        return extra

    def validate_and_save(self) -> None:
        """Rank 0: validate, log, plot, write last.pt (and best.pt, and the averaging snapshot)."""
        if self.dist.is_main:
            self.metrics = {"step": self.position.step, **self.validate()}
            improved = self.metrics["val_bleu"] > self.position.best_bleu
            self.position.best_bleu = max(self.position.best_bleu, self.metrics["val_bleu"])
            self.say(
                f"step {self.position.step}: val loss {self.metrics['val_loss']:.3f}  "
                f"BLEU {self.metrics['val_bleu']:.2f}  chrF {self.metrics['val_chrf']:.2f}"
                + ("  (best)" if improved else "")
            )
            self.log.write(self.metrics)
            self.log.plot()
            save_checkpoint(self.run_dir / "last.pt", self.model, self.tokenizer_model, **self.checkpoint_extra())
            if improved:
                copy_atomically(self.run_dir / "last.pt", self.run_dir / "best.pt")
            self.keep_snapshot()
        self.dist.barrier()

    def keep_snapshot(self) -> None:
        """Keep the weights of the last `average_last` validations, for averaging."""
        if self.cfg.run.average_last < 2:
            return
        snapshots = self.run_dir / "snapshots"
        snapshots.mkdir(exist_ok=True)
        torch.save(self.model.state_dict(), snapshots / f"step_{self.position.step:08d}.pt")
        for old in sorted(snapshots.glob("step_*.pt"))[: -self.cfg.run.average_last]:
            old.unlink()

    def write_average(self) -> None:
        """averaged.pt: the mean of the kept snapshots' weights, validated and saved like a checkpoint."""
        paths = sorted((self.run_dir / "snapshots").glob("step_*.pt"))
        if self.cfg.run.average_last < 2 or len(paths) < 2:
            return
        averaged = Transformer(self.model.cfg).to(self.device)
        averaged.load_state_dict(average_state_dicts(paths))
        metrics = {"step": self.position.step, "averaged_checkpoints": len(paths), **self.validate(averaged)}
        self.say(f"average of the last {len(paths)} checkpoints: BLEU {metrics['val_bleu']:.2f}")
        extra = {**self.checkpoint_extra(resumable=False), "metrics": metrics}
        save_checkpoint(self.run_dir / "averaged.pt", averaged, self.tokenizer_model, **extra)

    def finished(self) -> bool:
        return finished(self.cfg.optim, self.position)

    @contextlib.contextmanager
    def stop_on_interrupt(self) -> Iterator[None]:
        """Ctrl-C ends training after the current step, with a checkpoint to --resume from (single process)."""
        if self.dist.world_size > 1 or threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = signal.signal(signal.SIGINT, self.request_stop)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)

    def request_stop(self, signum: int, frame: Any) -> None:
        self.say("stopping after this step (checkpoints will be written; continue with --resume)")
        self.stop_requested = True

    def run(self) -> dict[str, Any]:
        """Train until max_steps or max_epochs; returns the latest validation metrics."""
        cfg = self.cfg
        self.say(f"model: {self.model.num_parameters():,} parameters; device {self.device}, bf16 {self.use_bf16}")
        for split in (self.train_split, self.val_split):
            self.say(f"{split.description['split']}: {split.counts.summary()}")
        bar = tqdm(total=cfg.optim.max_steps or None, initial=self.position.step, disable=not self.dist.is_main)
        meter = ThroughputMeter()
        with self.stop_on_interrupt():
            while not self.finished() and not self.stop_requested:
                self.train_epoch(bar, meter)
        bar.close()
        if self.position.step % cfg.run.val_every:  # the last step was not validated and saved yet
            self.validate_and_save()
        if self.dist.is_main:  # also after Ctrl-C: the average of the snapshots so far is worth having
            self.write_average()
        return self.metrics

    def train_epoch(self, bar: tqdm, meter: ThroughputMeter) -> None:
        """Train on the rest of the current epoch's batches (all of them unless resuming mid-epoch)."""
        cfg, position = self.cfg, self.position
        batches = epoch_batches(
            self.train_lengths, cfg.optim.max_tokens, cfg.run.seed, position.epoch, self.dist.rank, self.dist.world_size
        )
        self.epoch_size = len(batches)
        while position.batch_in_epoch < len(batches):
            start = time.perf_counter()
            loss_sum, n_tokens = self.train_step(self.training_batch(batches[position.batch_in_epoch]))
            position.step, position.batch_in_epoch = position.step + 1, position.batch_in_epoch + 1
            meter.add(loss_sum, n_tokens, time.perf_counter() - start)
            self.report(bar, meter)
            if position.step % cfg.run.val_every == 0:
                self.validate_and_save()
            if self.finished() or self.stop_requested:
                return
        position.epoch, position.batch_in_epoch = position.epoch + 1, 0

    def training_batch(self, indices: np.ndarray) -> Batch:
        """The training pairs at `indices`, re-segmented for this step when BPE-dropout is on."""
        if self.sampler is None:
            return collate(self.train_split.pairs, indices)
        pairs = self.sampler([self.train_split.pairs[i] for i in indices], self.position.step)
        return collate(pairs, np.arange(len(pairs)))

    def report(self, bar: tqdm, meter: ThroughputMeter) -> None:
        """Progress bar every step; a train-loss line in metrics.jsonl every `log_every` steps."""
        lr = self.scheduler.get_last_lr()[0]
        bar.update(1)
        bar.set_postfix(epoch=self.position.epoch, loss=f"{meter.loss:.3f}", lr=f"{lr:.2e}", tok_s=f"{meter.rate:.0f}")
        if self.log and self.position.step % self.cfg.run.log_every == 0:
            position = self.position
            record = {"step": position.step, "epoch": position.epoch, "train_loss": meter.loss, "lr": lr}
            self.log.write(record | {"target_tokens_per_s": meter.rate})
            meter.reset()


class ThroughputMeter:
    """Label-smoothed training loss per token, and target tokens per second of training (validation excluded),
    since the last reset."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.loss_sum, self.tokens, self.seconds = 0.0, 0, 0.0

    def add(self, loss_sum: float, tokens: int, seconds: float) -> None:
        self.loss_sum += loss_sum
        self.tokens += tokens
        self.seconds += seconds

    @property
    def loss(self) -> float:
        return self.loss_sum / max(self.tokens, 1)

    @property
    def rate(self) -> float:
        return self.tokens / max(self.seconds, 1e-9)


def parent_record(state: dict[str, Any], path: Path | None) -> dict[str, Any]:
    """What a fine-tuned model's card says of the checkpoint it started from: how that one was trained."""
    keys = ("step", "epochs", "train_seconds", "hardware", "train_config")
    return {"checkpoint": str(path), **{key: state.get(key) for key in keys}}


def copy_atomically(source: Path, destination: Path) -> None:
    tmp = destination.with_suffix(destination.suffix + ".tmp")
    shutil.copyfile(source, tmp)
    tmp.replace(destination)


def average_state_dicts(paths: list[Path]) -> dict[str, torch.Tensor]:
    """Element-wise mean of the weights saved at `paths`."""
    states = [torch.load(p, map_location="cpu", weights_only=True) for p in paths]
    return {name: sum(s[name].float() for s in states) / len(states) for name in states[0]}


def train(cfg: TrainConfig, resume: bool = False) -> dict[str, Any]:
    """Run one training job; returns the latest validation metrics."""
    trainer = Trainer(cfg, resume)
    try:
        return trainer.run()
    finally:
        if trainer.dist.world_size > 1:
            dist.destroy_process_group()
