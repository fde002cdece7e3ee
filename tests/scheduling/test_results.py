"""A sentence gets the same translation from the scheduler as alone, whenever it joins and with whomever."""

from __future__ import annotations

import asyncio
import random

import numpy as np
import pytest

from service.decoding.engine import Engine
from service.scheduling import Scheduler, SchedulerLimits
from service.scheduling.batcher import BatchKey, Item
from service.scheduling.cohort import Cohort, Sentence
from service.telemetry.metrics import Metrics
from service.types import DecodeOptions, Translation
from tests.support.tiny import source_sentences

OPTIONS = [
    DecodeOptions(),
    DecodeOptions(beam_size=3, n_best=2, length_penalty=0.6, return_attention=True),
    DecodeOptions(return_attention=True, max_length=4),
    DecodeOptions(beam_size=2),
]
TEXTS = source_sentences(12, seed=7)


class Wanted:
    """Owner of sentences that are never cancelled."""

    gone = False


def alone(engine: Engine, text: str, options: DecodeOptions) -> Translation:
    (translation,) = engine.translate([text], options)
    return translation


def assert_same(got: Translation, want: Translation) -> None:
    """Exact tokens, scores within 1e-5, attention within 1e-5."""
    assert [h.token_ids for h in got.hypotheses] == [h.token_ids for h in want.hypotheses]
    assert [h.score for h in got.hypotheses] == pytest.approx([h.score for h in want.hypotheses], abs=1e-5)
    for g, w in zip(got.hypotheses, want.hypotheses, strict=True):
        if w.attention is None:
            assert g.attention is None
        else:
            assert g.attention is not None
            np.testing.assert_allclose(g.attention, w.attention, atol=1e-5)


def test_a_cohort_of_mixed_options_gives_each_sentence_its_translation_alone(engine: Engine) -> None:
    cases = [(text, OPTIONS[i % len(OPTIONS)]) for i, text in enumerate(TEXTS)]
    sentences = [Sentence(Wanted(), i, engine.source_ids(t), o) for i, (t, o) in enumerate(cases)]
    cohort = Cohort(engine, sentences)
    got: dict[int, Translation] = {}
    while cohort.rows:
        got.update((s.index, t) for s, t in cohort.step())
    assert sorted(got) == list(range(len(cases)))
    for i, (text, options) in enumerate(cases):
        assert_same(got[i], alone(engine, text, options))


def test_cohorts_merged_at_later_steps_give_each_sentence_its_translation_alone(engine: Engine) -> None:
    cases = [(text, OPTIONS[i % len(OPTIONS)]) for i, text in enumerate(TEXTS)]
    sentences = [Sentence(Wanted(), i, engine.source_ids(t), o) for i, (t, o) in enumerate(cases)]
    host = Cohort(engine, sentences[:4])
    joining = {2: Cohort(engine, sentences[4:8]), 3: Cohort(engine, sentences[8:])}  # at these steps
    got: dict[int, Translation] = {}
    while host.rows:
        if host.position in joining:
            assert host.absorb(joining.pop(host.position))
        got.update((s.index, t) for s, t in host.step())
    assert not joining
    assert sorted(got) == list(range(len(cases)))
    for i, (text, options) in enumerate(cases):
        assert_same(got[i], alone(engine, text, options))


def test_cohorts_of_the_concatenating_graph_do_not_merge(concat_engine: Engine) -> None:
    engine = concat_engine
    assert not engine.merges(1) and not engine.merges(4)
    texts = TEXTS[:2]
    host, other = (Cohort(engine, [Sentence(Wanted(), 0, engine.source_ids(t), DecodeOptions())]) for t in texts)
    assert not host.absorb(other)
    assert host.rows == 1


class Leaving:
    """An owner whose request goes away once `gone` is set."""

    def __init__(self) -> None:
        self.gone = False


def test_sentences_leaving_a_cohort_do_not_change_the_others(engine: Engine) -> None:
    owners = [Leaving() for _ in TEXTS]
    cases = [(text, OPTIONS[i % len(OPTIONS)]) for i, text in enumerate(TEXTS)]
    sentences = [Sentence(owners[i], i, engine.source_ids(t), o) for i, (t, o) in enumerate(cases)]
    cohort = Cohort(engine, sentences)
    got: dict[int, Translation] = {}
    left: set[int] = set()
    while cohort.rows:
        if cohort.position == 1:
            for i in range(0, len(owners), 3):
                owners[i].gone = True
            left = {s.index for s in cohort.drop_gone()}
        got.update((s.index, t) for s, t in cohort.step())
    assert left and not left & set(got)
    assert set(got) | left == set(range(len(cases)))
    for i in got:
        assert_same(got[i], alone(engine, *cases[i]))


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("interface", ["auto", "inplace", "concat"])
def test_requests_joining_in_random_order_get_their_translations_alone(
    request: pytest.FixtureRequest, seed: int, workers: int, interface: str
) -> None:
    engine: Engine = request.getfixturevalue(f"{interface}_engine" if interface != "auto" else "engine")
    rng = random.Random(seed)
    requests = [
        ([TEXTS[i] for i in rng.sample(range(len(TEXTS)), rng.randint(1, 4))], rng.choice(OPTIONS)) for _ in range(10)
    ]
    limits = SchedulerLimits(max_batch_size=rng.randint(1, 6), max_rows=16, workers=workers, max_queue_delay_s=0)

    async def run() -> list[list[Translation]]:
        scheduler = Scheduler({"en-fr": engine}, limits, Metrics())

        async def one(texts: list[str], options: DecodeOptions) -> list[Translation]:
            await asyncio.sleep(rng.random() * 0.02)
            items = [Item(t, engine.count_tokens(t)) for t in texts]
            return await scheduler.submit(items, BatchKey("en-fr", options))

        try:
            return await asyncio.gather(*(one(*r) for r in requests))
        finally:
            await scheduler.close(5)

    for (texts, options), results in zip(requests, asyncio.run(run()), strict=True):
        assert len(results) == len(texts)
        for text, got in zip(texts, results, strict=True):
            assert_same(got, alone(engine, text, options))
