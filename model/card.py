"""The model card, MODEL_CARD.md of a model directory, rendered from the directory's manifest alone.

Every number comes from what training, export and evaluation recorded in manifest.json, so a card can be
checked against its manifest at any time (tests/quality does) and rewritten when either changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from service.decoding.engine import CPU
from service.decoding.manifest import Manifest

CARD_FILE = "MODEL_CARD.md"
GATE_SPLIT = "test_2016_flickr"
QUALITY_GATES: dict[str, dict[str, float]] = {  # pair -> decoding -> lowest acceptable BLEU on GATE_SPLIT
    "en-fr": {"beam4": 57.0, "greedy": 55.0},
    "en-de": {"beam4": 37.0},
}
NOT_RECORDED = "not recorded"


@dataclass
class Gate:
    """One quality gate of a pair: a decoding's lowest acceptable BLEU, and the BLEU measured."""

    decoding: str
    required: float
    measured: float | None

    @property
    def met(self) -> bool:
        return self.measured is not None and self.measured >= self.required


def quality_gates(manifest: Manifest) -> list[Gate]:
    """The pair's gates, against the test BLEU of the variant the engine serves on CPU (int8)."""
    pair = f"{manifest.source_language}-{manifest.target_language}"
    served = test_results(manifest).get(GATE_SPLIT, {}).get(manifest.variant_for(CPU), {})
    return [
        Gate(decoding, required, served.get(decoding, {}).get("bleu"))
        for decoding, required in QUALITY_GATES.get(pair, {}).items()
    ]


def test_results(manifest: Manifest) -> dict[str, Any]:
    """Recorded test scores: split -> variant -> decoding -> {"bleu", "chrf"} (empty before evaluation)."""
    return manifest.scores.get("test", {}).get("results", {})


def render_card(manifest: Manifest) -> str:
    """The whole card as Markdown."""
    sections = [title(manifest), data(manifest), training(manifest), scores(manifest), gates(manifest)]
    return "\n\n".join([*sections, limits(manifest), reproduce(manifest)]) + "\n"


def title(manifest: Manifest) -> str:
    corpus = Path((manifest.training.get("data") or {}).get("corpus_dir", NOT_RECORDED)).name
    return (
        f"# {manifest.name} {manifest.version}: {manifest.source_language} -> {manifest.target_language}\n\n"
        f"A Transformer encoder-decoder trained on {corpus}, exported to ONNX ({', '.join(manifest.variants)}) "
        "for the onnxruntime engine of `service/`.\nWritten by `python -m model pipeline` from `manifest.json`: "
        "every figure below is recorded there."
    )


def data(manifest: Manifest) -> str:
    described = manifest.training.get("data") or {}
    config = (manifest.training.get("config") or {}).get("data", {})
    counts = described.get("filter_counts", {})
    kept = (
        f"{counts['kept']:,} kept of {counts['read']:,} (dropped: {counts['empty']} with an empty side, "
        f"{counts['too_long']} over {config.get('max_sentence_tokens', '?')} subwords, {counts['bad_ratio']} "
        f"with a length ratio over {config.get('max_length_ratio', '?')})"
        if counts
        else NOT_RECORDED
    )
    rows = {
        "corpus": f"`{described.get('corpus_dir', NOT_RECORDED)}`",
        f"training split `{described.get('split', '?')}`": kept,
        "validation split": f"`{config.get('val_split', NOT_RECORDED)}` (checkpoint choice)",
        "test splits": ", ".join(f"`{split}`" for split in test_results(manifest)) or NOT_RECORDED,
    }
    return "## Data\n\n" + table(rows)


def training(manifest: Manifest) -> str:
    record, model = manifest.training, manifest.model_config
    config = record.get("config") or {}
    rows = {
        "architecture": (
            f"Transformer, {model['n_encoder_layers']} encoder + {model['n_decoder_layers']} decoder layers, "
            f"d_model {model['d_model']}, {model['n_heads']} heads, feed-forward {model['d_ff']}, "
            f"dropout {model['dropout']}"
        ),
        "vocabulary": f"joint SentencePiece BPE, {manifest.vocab_size:,} pieces",
        "parameters": f"{record['parameters']:,}" if record.get("parameters") else NOT_RECORDED,
        "optimization": optimization(config.get("optim")),
        "training": steps_and_epochs(record),
        "hardware": record.get("hardware") or NOT_RECORDED,
        "training time (wall-clock)": duration(record.get("train_seconds")),
        **fine_tuned_from(record.get("init")),
        "checkpoint": checkpoint_choice(record),
        "export": f"ONNX opset {manifest.opset}, {manifest.exporter}; variants {', '.join(manifest.variants)}",
    }
    full = yaml.safe_dump(config, sort_keys=False).strip() if config else NOT_RECORDED
    return (
        "## Model and training\n\n"
        + table(rows)
        + f"\n\n<details><summary>Training configuration</summary>\n\n```yaml\n{full}\n```\n\n</details>"
    )


def steps_and_epochs(record: dict[str, Any]) -> str:
    steps = f"{record['step']:,} steps" if record.get("step") is not None else f"steps {NOT_RECORDED}"
    epochs = f"{record['epochs']} epochs" if record.get("epochs") is not None else f"epochs {NOT_RECORDED}"
    return f"{steps}, {epochs}"


def fine_tuned_from(parent: dict[str, Any] | None) -> dict[str, str]:
    """Rows on the checkpoint a fine-tuned model started from (`run.init_from`); none for a model trained from
    scratch."""
    if not parent:
        return {}
    optim = (parent.get("train_config") or {}).get("optim")
    return {
        "fine-tuned from": f"`{parent['checkpoint']}`: {steps_and_epochs(parent)} before the steps above",
        "its optimization": optimization(optim),
        "its hardware and time": f"{parent.get('hardware') or NOT_RECORDED}, {duration(parent.get('train_seconds'))}",
    }


def optimization(optim: dict[str, Any] | None) -> str:
    if not optim:
        return NOT_RECORDED
    return (
        f"Adam, peak learning rate {optim['lr']} after {optim['warmup_steps']} warm-up steps then inverse square "
        f"root decay, label smoothing {optim['label_smoothing']}, {optim['max_tokens']} tokens per batch"
    )


def checkpoint_choice(record: dict[str, Any]) -> str:
    candidates = (record.get("pipeline") or {}).get("candidates", {})
    validated = "; validation BLEU (greedy): " + ", ".join(f"`{n}` {b:.2f}" for n, b in candidates.items())
    return f"`{record.get('checkpoint', NOT_RECORDED)}`" + (validated if candidates else "")


def duration(seconds: float | None) -> str:
    if seconds is None:
        return NOT_RECORDED
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes = round(seconds / 60)
    return f"{minutes // 60} h {minutes % 60:02d} min" if minutes >= 60 else f"{minutes} min"


def scores(manifest: Manifest) -> str:
    test, results = manifest.scores.get("test", {}), test_results(manifest)
    if not results:
        return "## Scores\n\nNot evaluated yet."
    variants = list(next(iter(results.values())))
    header = ["test set", "decoding"] + [f"{v} {metric}" for v in variants for metric in ("BLEU", "chrF")]
    compare = {"int8", "fp32"} <= set(variants)
    lines = [header + (["int8 - fp32 BLEU"] if compare else [])]
    for split, by_variant in results.items():
        for decoding in test["decoding"]:
            row = [f"`{split}`", decoding]
            row += [f"{by_variant[v][decoding][m]:.2f}" for v in variants for m in ("bleu", "chrf")]
            if compare:
                row.append(f"{by_variant['int8'][decoding]['bleu'] - by_variant['fp32'][decoding]['bleu']:+.2f}")
            lines.append(row)
    settings = "; ".join(
        f"{name}: beam {d['beam_size']}, length penalty {d['length_penalty']}, {d['batch_sentences']} sentences "
        "per engine call (sorted by length)"
        for name, d in test["decoding"].items()
    )
    signatures = test["signatures"]
    return (
        "## Scores\n\nDetokenized, cased sacreBLEU (13a tokenization) and chrF against the one reference, of the "
        "translations made by the service's engine (onnxruntime) with each exported variant.\n"
        f"Decoding: {settings}.\n\n{markdown_table(lines, numeric_from=2)}\n\n"
        f"sacreBLEU signatures: BLEU `{signatures['bleu']}`, chrF `{signatures['chrf']}`."
    )


def gates(manifest: Manifest) -> str:
    pair = f"{manifest.source_language}-{manifest.target_language}"
    found = quality_gates(manifest)
    if not found:
        return f"## Quality gate\n\nNo quality gate is set for {pair}."
    lines = [["decoding", "required BLEU", "measured BLEU", ""]]
    for gate in found:
        measured = NOT_RECORDED if gate.measured is None else f"{gate.measured:.2f}"
        lines.append([gate.decoding, f">= {gate.required:.2f}", measured, "met" if gate.met else "**not met**"])
    return (
        f"## Quality gate\n\nThe {pair} gate on `{GATE_SPLIT}`, for the {manifest.variant_for(CPU)} variant "
        f"(the engine's default on CPU):\n\n{markdown_table(lines, numeric_from=1)}"
    )


CAPTIONS_DOMAIN = (
    "- Domain: the corpus is image captions, short literal descriptions of people, animals and scenes. Long or "
    "complex sentences, dialogue, questions, news or technical text are out of domain and translated much "
    "worse than the scores suggest (the test sets are captions too).\n"
)
OTHER_DOMAIN = (
    "- Domain: only what the training corpus covers; text unlike it is translated much worse than the scores on "
    "the corpus's own test sets suggest.\n"
)


def limits(manifest: Manifest) -> str:
    described = manifest.training.get("data") or {}
    kept = (described.get("filter_counts") or {}).get("kept")
    size = f"{kept:,} sentence pairs" if kept else "a small corpus"
    captions = "multi30k" in Path(described.get("corpus_dir", "")).name.lower()
    return (
        "## Known limits\n\n"
        + (CAPTIONS_DOMAIN if captions else OTHER_DOMAIN)
        + f"- Rare words: trained on {size}. Rare words, names and numbers are often mistranslated, dropped or "
        f"copied; {casing_seen(manifest, captions)}.\n"
        "- No context: each sentence is translated alone, so pronouns, gender and terms are not kept consistent "
        f"across sentences. Output is cut at {manifest.max_length_a} x source tokens + {manifest.max_length_b}."
    )


def casing_seen(manifest: Manifest, captions: bool) -> str:
    """How much unusual casing training saw: the case-augmented shares, else none beyond the corpus's own."""
    data = (manifest.training.get("config") or {}).get("data", {})
    upper, title = data.get("upper_case_fraction", 0.0), data.get("title_case_fraction", 0.0)
    if upper or title:
        return f"all capitals and Title Case were trained on in {upper:.0%} and {title:.0%} extra copies of the pairs"
    corpus = "the captions'" if captions else "the corpus's"
    return f"casing other than {corpus} (all capitals, all lower case) was hardly seen in training"


def reproduce(manifest: Manifest) -> str:
    command = (manifest.training.get("pipeline") or {}).get("command")
    if not command:
        return "## Reproduce\n\nNot recorded: this directory was not made by `python -m model pipeline`."
    libraries = ", ".join(f"{name} {version}" for name, version in manifest.libraries.items())
    parent = manifest.training.get("init")
    first = (
        f"`run.init_from` is the checkpoint it was fine-tuned from; train that one first, with the configuration "
        f"recorded in `manifest.json` (`training.init.train_config`), to step {parent.get('step')}. "
        if parent
        else ""
    )
    return (
        f"## Reproduce\n\n```bash\n{command}\n```\n\n{first}"
        "It trains (or resumes) in the configuration's run directory, then exports, evaluates and writes this card. "
        f"Exported with {libraries}."
    )


def table(rows: dict[str, str]) -> str:
    """A two-column Markdown table without a header row's text."""
    return markdown_table([["", ""], *([f"**{k}**", v] for k, v in rows.items())])


def markdown_table(lines: list[list[str]], numeric_from: int | None = None) -> str:
    """Rows as a Markdown table, the first being the header; columns from `numeric_from` on align right."""
    n = len(lines[0])
    rule = ["---:" if numeric_from is not None and i >= numeric_from else "---" for i in range(n)]
    return "\n".join("| " + " | ".join(row) + " |" for row in [lines[0], rule, *lines[1:]])
