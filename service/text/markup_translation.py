"""The translation of an HTML text, from the translations of its blocks."""

from __future__ import annotations

from collections.abc import Sequence

from service.text.alignment import Link, shifted, word_alignment
from service.text.markup import Block, Page
from service.text.placement import render_block
from service.types import Hypothesis, Translation


def translated_page(page: Page, translations: Sequence[Translation]) -> Translation:
    """The page's n-best translations: its k-th hypothesis puts together the k-th hypothesis of every block.

    Each block's translation must carry its attention. A hypothesis' tokens are its blocks' tokens in page
    order and its score the sum of theirs.
    """
    if len(translations) != len(page.blocks):
        raise ValueError(f"{len(translations)} translations for a page of {len(page.blocks)} blocks")
    count = min((len(t.hypotheses) for t in translations), default=1)
    hypotheses = []
    for k in range(count):
        chosen = [t.hypotheses[k] for t in translations]
        blocks = [
            render_block(block, h.text, block_links(block, t.source_tokens, h))
            for block, t, h in zip(page.blocks, translations, chosen, strict=True)
        ]
        hypotheses.append(
            Hypothesis(
                text=page.render(blocks),
                token_ids=[i for h in chosen for i in h.token_ids],
                tokens=[piece for h in chosen for piece in h.tokens],
                score=sum(h.score for h in chosen),
            )
        )
    return Translation(source_tokens=[], hypotheses=hypotheses)


def block_links(block: Block, source_tokens: Sequence[str], hypothesis: Hypothesis) -> list[Link]:
    """The word links of a block's hypothesis, source spans in the block's text."""
    if hypothesis.attention is None:
        raise ValueError("a block's translation needs its attention to place the block's tags")
    links = word_alignment(source_tokens, hypothesis.tokens, hypothesis.attention, block.source, hypothesis.text)
    return shifted(links, 0, block.offset)
