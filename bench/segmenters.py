"""Sentence segmenters side by side: accuracy on made-up paragraphs (abbreviations, numbers, quotes) and speed.

Run: python -m bench.segmenters
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from importlib import metadata

from bench.machine import describe_machine

# Each case: the sentences a paragraph is made of; the paragraph is them joined by one space.
CASES: list[list[str]] = [
    ["Dr. Smith rides a bike to work.", "He arrives at 8 a.m. every day."],
    ["The price rose by 3.5 percent in 2023.", "Analysts expected 2.1 percent."],
    ['"Where are you going?" she asked.', "He did not answer."],
    ["Mr. and Mrs. Brown live in the U.S. now.", "They moved from St. Louis."],
    ["A man in a red shirt climbs a rock.", "Two dogs play in the snow!", "Is the girl smiling?"],
    ["See e.g. the map on p. 12.", "It shows the route."],
    ["The meeting is at 10:30 a.m. on Jan. 5.", "Please be on time."],
    ['He said: "It is done."', "Then he left."],
    ["Version 2.0 was released.", "It fixes 15 bugs, i.e. most of them."],
    ["Prof. Müller kam um 9 Uhr.", "Er war müde."],
    ["M. Dupont est arrivé à 8 h 30.", "Il pleuvait."],
    ["The U.N. met on Monday.", "No decision was made."],
    ["Wait...", "what happened?"],
    ["Items cost $4.99 each.", "We bought 3."],
    ["A dog runs (fast) through the grass.", "It is happy."],
    ["Call me at 555-1234.", "Or e-mail me at a.b@example.com."],
]


def pysbd_splitter() -> Callable[[str], list[str]]:
    import pysbd

    segmenter = pysbd.Segmenter(language="en", clean=False)
    return lambda text: [s.strip() for s in segmenter.segment(text) if s.strip()]


def sentencex_splitter() -> Callable[[str], list[str]]:
    from sentencex import segment

    return lambda text: [s.strip() for s in segment("en", text) if s.strip()]


def measure(name: str, split: Callable[[str], list[str]]) -> None:
    right = sum(split(" ".join(case)) == case for case in CASES)
    paragraph = " ".join(s for case in CASES[:3] for s in case)[:400]
    document = " ".join(" ".join(case) for case in CASES * 40)
    one = _median_ms(lambda: split(CASES[0][0]), 200)
    para = _median_ms(lambda: split(paragraph), 100)
    doc = _median_ms(lambda: split(document), 3)
    sentences = sum(len(c) for c in CASES) * 40
    print(
        f"| {name} | {right}/{len(CASES)} | {one:.3f} | {para:.3f} | {doc:.1f} ({sentences} sentences) |",
        flush=True,
    )


def _median_ms(call: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def main() -> None:
    print(f"machine: {describe_machine()['summary']}")
    print("| segmenter | paragraphs split right | 1 sentence, ms | 5-sentence paragraph, ms | document, ms |")
    print("|---|---:|---:|---:|---:|")
    for name, make in (("pysbd", pysbd_splitter), ("sentencex", sentencex_splitter)):
        measure(f"{name} {metadata.version(name)}", make())


if __name__ == "__main__":
    main()
