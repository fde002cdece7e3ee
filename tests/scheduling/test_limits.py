"""Budgets refuse work before it starts; no request holds more than its share of a model's rows."""

from __future__ import annotations

import asyncio

import pytest

from service.decoding.engine import Engine
from service.scheduling import Scheduler, SchedulerLimits
from service.scheduling.batcher import BatchKey, Item
from service.scheduling.budget import BudgetExceeded
from service.scheduling.cohort import Cohort, Sentence
from service.scheduling.scheduler import ModelScheduler, Ticket
from service.telemetry.metrics import Metrics
from service.types import DecodeOptions
from tests.support.tiny import source_sentences

TEXTS = source_sentences(8, seed=3)


def refusal(engine: Engine, limits: SchedulerLimits, options: DecodeOptions) -> tuple[str, Metrics]:
    metrics = Metrics()

    async def run() -> str:
        scheduler = Scheduler({"en-fr": engine}, limits, metrics)
        items = [Item(t, engine.count_tokens(t)) for t in TEXTS]
        try:
            with pytest.raises(BudgetExceeded) as refused:
                await scheduler.submit(items, BatchKey("en-fr", options))
            return str(refused.value)
        finally:
            await scheduler.close(1)

    return asyncio.run(run()), metrics


def value(metrics: Metrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


def test_a_request_over_the_compute_budget_is_refused_before_any_work(engine: Engine) -> None:
    message, metrics = refusal(engine, SchedulerLimits(max_request_work=100), DecodeOptions(beam_size=4))
    assert "max_request_work allows 100" in message
    assert value(metrics, "mt_budget_refusals_total", model="en-fr", limit="max_request_work") == 1
    assert value(metrics, "mt_sentence_joins_total", model="en-fr") == 0


def test_a_request_whose_response_would_be_too_large_is_refused_before_any_work(engine: Engine) -> None:
    limits = SchedulerLimits(max_response_bytes=1024)
    message, metrics = refusal(engine, limits, DecodeOptions(beam_size=4, n_best=4, return_attention=True))
    assert "max_message_bytes allows 1024" in message
    assert value(metrics, "mt_budget_refusals_total", model="en-fr", limit="max_message_bytes") == 1
    assert value(metrics, "mt_decoder_steps_total", model="en-fr") == 0


def test_no_request_joins_with_more_than_its_share_of_the_rows(engine: Engine) -> None:
    limits = SchedulerLimits(max_rows=8, max_request_share=0.5, workers=0)  # no worker: joins are computed here
    options = DecodeOptions(beam_size=2)

    async def run() -> tuple[list[int], list[int]]:
        model = ModelScheduler("en-fr", engine, limits, Metrics())
        big, small = Ticket(len(TEXTS), None), Ticket(1, None)
        model.enqueue([Sentence(big, i, engine.source_ids(t), options) for i, t in enumerate(TEXTS)])
        model.enqueue([Sentence(small, 0, engine.source_ids(TEXTS[0]), options)])
        first = model._joining()
        second = model._joining()  # the big request holds its share: its other sentences wait
        return [len([s for s in first if s.owner is t]) for t in (big, small)], [len(second), big.rows]

    (big_joined, small_joined), (later, big_rows) = asyncio.run(run())
    assert (big_joined, small_joined) == (2, 1)  # 2 sentences x 2 beams = 4 rows = half of 8
    assert later == 0 and big_rows == 4


def test_a_join_takes_one_beam_size_and_a_merging_join_needs_no_cohort_slot(engine: Engine) -> None:
    limits = SchedulerLimits(workers=0, max_queue_delay_s=0)  # no worker: one cohort slot, joins computed here
    greedy, beam = DecodeOptions(), DecodeOptions(beam_size=3)

    metrics = Metrics()

    async def run() -> list[list[int]]:
        model = ModelScheduler("en-fr", engine, limits, metrics)
        sentences = [
            Sentence(Ticket(1, None), 0, engine.source_ids(t), o)
            for t, o in zip(TEXTS, [beam, greedy] * 4, strict=True)
        ]
        model.enqueue(sentences[:3])
        first = model._joining()  # the two beam searches, the greedy sentence waits
        model._join(first)  # now decoding: the only cohort slot is taken
        blocked = model._joining()  # a greedy cohort would need a slot of its own
        model.enqueue(sentences[4:5])
        merging = model._joining()  # a beam-3 cohort merges into the decoding one (both on the in-place graph)
        model._join(merging)
        step = model._take()
        assert step is not None
        step()  # one decoder call of the merged cohort
        return [[s.rows for s in joined] for joined in (first, blocked, merging)]

    assert asyncio.run(run()) == [[3, 3], [], [3]]
    assert value(metrics, "mt_cohort_merges_total", model="en-fr") == 1
    assert value(metrics, "mt_decoder_steps_total", model="en-fr") == 1


def test_a_step_counts_the_rows_of_its_sentences_not_its_seconds(engine: Engine) -> None:
    """Cohorts take turns by rows per sentence so far: a cohort down to its last sentence is charged per step what
    a full one is (in seconds its one-row steps cost more per sentence, and it fell behind), a beam-4 cohort four
    times as much."""
    limits = SchedulerLimits(workers=0)  # no worker: steps are run here

    async def run() -> list[float]:
        model = ModelScheduler("en-fr", engine, limits, Metrics())

        def cohort(options: DecodeOptions, texts: list[str]) -> Cohort:
            return Cohort(engine, [Sentence(Ticket(1, None), 0, engine.source_ids(t), options) for t in texts])

        cohorts = [
            cohort(DecodeOptions(), TEXTS[:1]),
            cohort(DecodeOptions(), TEXTS),
            cohort(DecodeOptions(beam_size=4), TEXTS[:3]),
        ]
        model._ready.extend(cohorts)
        for _ in cohorts:  # all at 0 rows so far: each steps once, whatever one step costs
            step = model._take()
            assert step is not None
            step()
        return [c.served for c in cohorts]

    assert asyncio.run(run()) == [1, 1, 4]
