"""Markup handling cost: parsing HTML into blocks, aligning words, rendering the translation back.

`python -m bench.markup_bench [--model-dir models/en-fr]` times each stage on a one-paragraph page and on a
large page (a document of many paragraphs, lists, links, code and scripts), p50 and p99 over repeats, and
prints them with the CPU. The translations are the blocks' own words and the attention is random (what the
markup code does costs the same whatever the model said); with --model-dir, the model's own time to translate
the one-paragraph page's block is printed beside, for scale.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from bench.machine import describe_machine
from service.text.alignment import Link, word_alignment
from service.text.markup import Block, parse
from service.text.placement import render_block

PARAGRAPH = (
    '<p class="lead">A man in a <b>blue</b> shirt <a href="/x?a=1&amp;b=2">rides</a> a <i>bike</i> down the'
    ' street, past two <span lang="en">women</span> sitting on a bench.<br>A dog runs after him.</p>'
)
SECTION = (
    '<h2 id="s{n}">Section {n}: <em>people</em> outside</h2>\n'
    + PARAGRAPH
    + '\n<ul><li>A child plays with a <b>red</b> ball.</li><li>Two <a href="/d">dogs</a> run.</li></ul>\n'
    '<p>Run <code>make test</code> before <span translate="no">mt-serve</span> ships. <!-- note --></p>\n'
)


def large_page(sections: int) -> str:
    """A whole document of `sections` sections of five blocks each, with a title, a style and a script."""
    body = "".join(SECTION.format(n=n) for n in range(sections))
    head = "<head><title>A long page</title><style>p { margin: 0 }</style><script>if (a < b) go()</script></head>"
    return f"<!DOCTYPE html>\n<html lang='en'>{head}<body>\n{body}</body></html>\n"


def pieces(text: str) -> list[str]:
    """SentencePiece-like pieces of a text: one per word, then end of sentence."""
    return [f"▁{word}" for word in text.split()] + ["</s>"]


def model_output(block: Block, rng: np.random.Generator) -> tuple[list[str], list[str], np.ndarray]:
    """Source pieces, target pieces (the block's own words) and a random attention matrix between them."""
    source, target = pieces(block.source), pieces(block.source)[:-1]
    return source, target, rng.dirichlet(np.ones(len(source)), size=len(target)).astype(np.float32)


def aligned(block: Block, output: tuple[list[str], list[str], np.ndarray]) -> list[Link]:
    """Word links of the block's own words."""
    return word_alignment(*output, block.source, block.source)


def percentiles(run: Callable[[], object], repeats: int) -> tuple[float, float]:
    """p50 and p99 of `run`'s wall time, in milliseconds."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    p50, p99 = np.percentile(times, [50, 99]) * 1000
    return float(p50), float(p99)


def measure(name: str, html: str, repeats: int) -> list[str]:
    """The report lines of one page: its size, then each stage's p50 and p99."""
    document = parse(html)
    rng = np.random.default_rng(0)
    outputs = [model_output(block, rng) for block in document.blocks]
    links = [aligned(block, output) for block, output in zip(document.blocks, outputs, strict=True)]
    stages: dict[str, Callable[[], object]] = {
        "parse": lambda: parse(html),
        "align": lambda: [aligned(block, output) for block, output in zip(document.blocks, outputs, strict=True)],
        "render": lambda: document.render(
            [render_block(b, b.source, ls) for b, ls in zip(document.blocks, links, strict=True)]
        ),
    }
    each = list(stages.values())
    stages["all"] = lambda: [stage() for stage in each]
    lines = [f"{name}: {len(html):,} characters, {len(document.blocks):,} blocks"]
    for stage, run in stages.items():
        p50, p99 = percentiles(run, repeats)
        lines.append(f"  {stage:7} p50 {p50:9.3f} ms   p99 {p99:9.3f} ms")
    return lines


def translation_time(model_dir: Path, html: str, repeats: int) -> str:
    """The engine's p50 time to translate the page's blocks, greedy, with attention."""
    from service.decoding.engine import Engine
    from service.types import DecodeOptions

    engine = Engine.load(model_dir, intra_op_threads=1)
    sources = [block.source for block in parse(html).blocks]
    p50, p99 = percentiles(lambda: engine.translate(sources, DecodeOptions(return_attention=True)), repeats)
    return f"translation of the paragraph's blocks by {model_dir} (greedy, 1 thread): p50 {p50:.3f}, p99 {p99:.3f} ms"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.markup_bench", description=__doc__.splitlines()[0])
    parser.add_argument("--sections", type=int, default=200, help="sections of the large page (5 blocks each)")
    parser.add_argument("--repeats", type=int, default=200, help="timed runs of the one-paragraph page")
    parser.add_argument("--large-repeats", type=int, default=20, help="timed runs of the large page")
    parser.add_argument("--model-dir", type=Path, help="also time this model translating the paragraph")
    args = parser.parse_args(argv)
    print(f"machine: {describe_machine()['summary']}")
    for line in measure("one paragraph", PARAGRAPH, args.repeats):
        print(line)
    for line in measure(f"large page ({args.sections} sections)", large_page(args.sections), args.large_repeats):
        print(line)
    if args.model_dir is not None:
        print(translation_time(args.model_dir, PARAGRAPH, min(args.repeats, 50)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
