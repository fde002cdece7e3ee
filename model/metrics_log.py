"""The run's metrics: one JSON object per line in `metrics.jsonl`, and a plot of the curves in `curves.png`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the file-only backend)


class MetricsLog:
    """Appends records to `metrics.jsonl`; on resume, drops records from after the checkpoint's step."""

    def __init__(self, run_dir: Path, resume_step: int = 0):
        self.path, self.plot_path = run_dir / "metrics.jsonl", run_dir / "curves.png"
        kept = [r for r in self.records() if r["step"] <= resume_step]
        self.path.write_text("".join(json.dumps(r) + "\n" for r in kept))

    def records(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        return [json.loads(line) for line in self.path.read_text().splitlines() if line.strip()]

    def write(self, record: dict[str, Any]) -> None:
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")

    def plot(self) -> None:
        """Training and validation loss, and validation BLEU, against the step."""
        records = self.records()
        train = [r for r in records if "train_loss" in r]
        val = [r for r in records if "val_bleu" in r]
        fig, (loss_ax, bleu_ax) = plt.subplots(1, 2, figsize=(11, 4))
        loss_ax.plot([r["step"] for r in train], [r["train_loss"] for r in train], label="train (label-smoothed)")
        loss_ax.plot([r["step"] for r in val], [r["val_loss"] for r in val], "o-", label="validation")
        loss_ax.set(xlabel="step", ylabel="loss per token", title="Cross-entropy")
        loss_ax.legend()
        bleu_ax.plot([r["step"] for r in val], [r["val_bleu"] for r in val], "o-", label="BLEU")
        bleu_ax.plot([r["step"] for r in val], [r["val_chrf"] for r in val], "s--", label="chrF")
        bleu_ax.set(xlabel="step", ylabel="score", title="Validation (greedy)")
        bleu_ax.legend()
        fig.tight_layout()
        fig.savefig(self.plot_path, dpi=100)
        plt.close(fig)
