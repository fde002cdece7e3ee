"""Hand-made translations of blocks and their word links, for rendering tests."""

from __future__ import annotations

import random
import re
from collections.abc import Callable

from service.text.alignment import Link
from service.text.markup import Block, Page
from service.text.placement import render_block

Translator = Callable[[Block], tuple[str, list[Link]]]


def _words(block: Block) -> list[tuple[str, tuple[int, int]]]:
    return [(m.group(), m.span()) for m in re.finditer(r"\S+", block.text)]


def _translation(words: list[tuple[str, tuple[int, int]]]) -> tuple[str, list[Link]]:
    """The words joined by spaces, each linked to the source span it came with."""
    links, position = [], 0
    for word, source in words:
        links.append(Link((position, position + len(word)), source))
        position += len(word) + 1
    return " ".join(word for word, _ in words), links


def identity(block: Block) -> tuple[str, list[Link]]:
    """The block's own words, each linked to itself."""
    return _translation(_words(block))


def reversed_upper(block: Block) -> tuple[str, list[Link]]:
    """The block's words in reverse order and upper case, each linked to its source word."""
    return _translation([(word.upper(), span) for word, span in _words(block)[::-1]])


def shuffled(seed: int) -> Translator:
    """The block's words in a random order, some dropped, some doubled, all linked to their source words."""
    rng = random.Random(seed)

    def translate(block: Block) -> tuple[str, list[Link]]:
        words = [w for w in _words(block) for _ in range(rng.choice([0, 1, 1, 1, 2]))] or _words(block)[:1]
        rng.shuffle(words)
        return _translation(words)

    return translate


def render(document: Page, translate: Translator) -> str:
    """The document with each block translated by `translate`."""
    return document.render([render_block(block, *translate(block)) for block in document.blocks])
