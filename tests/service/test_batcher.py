"""The dynamic batcher on its own, with the word-reversing backend."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest

from service.errors import DeadlineExceeded, Draining, ModelNotFound, QueueFull
from service.scheduling.batcher import Batcher, BatchKey, BatchLimits, Item
from service.telemetry.metrics import Metrics
from service.types import DecodeOptions
from tests.service.fakes import ReversingBackend, reverse

T = TypeVar("T")
GREEDY = BatchKey("en-fr", DecodeOptions())
BEAM = BatchKey("en-fr", DecodeOptions(beam_size=2))


def run(scenario: Callable[[], Awaitable[T]]) -> T:
    return asyncio.run(asyncio.wait_for(scenario(), 20))


def items(*texts: str) -> list[Item]:
    return [Item(t, len(t.split()) + 1) for t in texts]


def make(backend: ReversingBackend, **limits: Any) -> Batcher:
    return Batcher({backend.name: backend}, BatchLimits(**limits), Metrics())


async def until(condition: Callable[[], bool]) -> None:
    while not condition():
        await asyncio.sleep(0.001)


async def occupy(batcher: Batcher, backend: ReversingBackend) -> asyncio.Task[object]:
    """Starts a request that keeps the worker busy until backend.gate is set."""
    task = asyncio.create_task(batcher.submit(items("busy"), GREEDY))
    await until(lambda: bool(backend.batches))
    return task


def test_lone_request_on_idle_model_is_not_delayed() -> None:
    backend = ReversingBackend()
    batcher = make(backend, max_queue_delay_s=10)

    async def scenario() -> float:
        start = time.monotonic()
        [result] = await batcher.submit(items("hello big world"), GREEDY)
        assert result.best.text == "world big hello"
        return time.monotonic() - start

    assert run(scenario) < 5, "it waited for company, with a delay of 10 s"


def test_concurrent_requests_share_batches_and_get_their_own_results() -> None:
    backend = ReversingBackend(delay=0.005)
    batcher = make(backend, max_batch_size=8)
    texts = [f"sentence number {i}" for i in range(120)]

    async def scenario() -> list[str]:
        results = await asyncio.gather(*(batcher.submit(items(t), GREEDY) for t in texts))
        return [r[0].best.text for r in results]

    assert run(scenario) == [reverse(t) for t in texts]
    sizes = [len(b) for b in backend.batches]
    assert max(sizes) > 1 and max(sizes) <= 8 and sum(sizes) == 120


def test_a_request_larger_than_a_batch_is_split_and_kept_in_order() -> None:
    backend = ReversingBackend()
    batcher = make(backend, max_batch_size=4)
    texts = [f"{'w ' * i}end" for i in range(10)]

    async def scenario() -> list[str]:
        return [t.best.text for t in await batcher.submit(items(*texts), GREEDY)]

    assert run(scenario) == [reverse(t) for t in texts]
    assert [len(b) for b in backend.batches] == [4, 4, 2]


def test_padded_tokens_bound_the_batch() -> None:
    backend = ReversingBackend(gate=threading.Event())
    batcher = make(backend, max_batch_tokens=10)

    async def scenario() -> None:
        busy = await occupy(batcher, backend)
        # 4 tokens each: two make 8 padded tokens, three would make 12
        waiting = [asyncio.create_task(batcher.submit(items("a b c"), GREEDY)) for _ in range(5)]
        await until(lambda: batcher.depth("en-fr") == 5)
        backend.gate.set()
        await asyncio.gather(busy, *waiting)

    run(scenario)
    assert [len(b) for b in backend.batches[1:]] == [2, 2, 1]


def test_only_equal_keys_share_a_batch() -> None:
    backend = ReversingBackend(gate=threading.Event())
    batcher = make(backend)

    async def scenario() -> None:
        busy = await occupy(batcher, backend)
        waiting = [
            asyncio.create_task(batcher.submit(items(f"{kind} {i}"), key))
            for i in range(4)
            for kind, key in (("greedy", GREEDY), ("beam", BEAM))
        ]
        await until(lambda: batcher.depth("en-fr") == 8)
        backend.gate.set()
        await asyncio.gather(busy, *waiting)

    run(scenario)
    for batch in backend.batches[1:]:
        assert len({text.split()[0] for text in batch}) == 1
    assert sorted(len(b) for b in backend.batches[1:]) == [4, 4]


def test_sentences_of_similar_length_are_grouped() -> None:
    backend = ReversingBackend(gate=threading.Event())
    batcher = make(backend, max_batch_size=2)
    short, long = "s", "l " * 30 + "l"

    async def scenario() -> None:
        busy = await occupy(batcher, backend)
        waiting = [asyncio.create_task(batcher.submit(items(t), GREEDY)) for t in (short, long, short, long)]
        await until(lambda: batcher.depth("en-fr") == 4)
        backend.gate.set()
        await asyncio.gather(busy, *waiting)

    run(scenario)
    assert backend.batches[1:] == [[short, short], [long, long]]


def test_under_load_a_batch_waits_for_company_at_most_the_delay() -> None:
    backend = ReversingBackend()
    batcher = make(backend, max_queue_delay_s=0.2)

    async def scenario() -> float:
        start = time.monotonic()
        await asyncio.gather(*(batcher.submit(items(f"t {i}"), GREEDY) for i in range(3)))
        return time.monotonic() - start

    elapsed = run(scenario)
    assert [len(b) for b in backend.batches] == [3]
    assert elapsed >= 0.18, "the batch did not wait for company"  # timers never fire early
    assert elapsed < 10, "the batch waited for company longer than the delay"  # a wide margin for a busy machine


def test_a_full_batch_starts_at_once() -> None:
    backend = ReversingBackend()
    batcher = make(backend, max_batch_size=3, max_queue_delay_s=10)

    async def scenario() -> float:
        start = time.monotonic()
        await asyncio.gather(*(batcher.submit(items(f"t {i}"), GREEDY) for i in range(3)))
        return time.monotonic() - start

    assert run(scenario) < 5, "a full batch waited for company, with a delay of 10 s"
    assert [len(b) for b in backend.batches] == [3]


def test_a_full_queue_refuses_at_once() -> None:
    backend = ReversingBackend(gate=threading.Event())
    batcher = make(backend, max_queue_size=4)

    async def scenario() -> None:
        busy = await occupy(batcher, backend)
        accepted = asyncio.create_task(batcher.submit(items("a", "b", "c", "d"), GREEDY))
        await until(lambda: batcher.depth("en-fr") == 4)
        with pytest.raises(QueueFull, match="queue of 4"):
            await batcher.submit(items("e"), GREEDY)
        backend.gate.set()
        assert len(await accepted) == 4
        await busy

    run(scenario)


def test_expired_work_is_dropped_before_compute() -> None:
    backend = ReversingBackend(gate=threading.Event())
    batcher = make(backend)

    async def scenario() -> None:
        busy = await occupy(batcher, backend)
        with pytest.raises(DeadlineExceeded):
            await batcher.submit(items("too late"), GREEDY, deadline=time.monotonic() + 0.05)
        assert batcher.depth("en-fr") == 0
        with pytest.raises(DeadlineExceeded):
            await batcher.submit(items("already late"), GREEDY, deadline=time.monotonic() - 1)
        backend.gate.set()
        await busy

    run(scenario)
    assert backend.batches == [["busy"]]


def test_cancelling_a_caller_frees_its_queue_slots() -> None:
    backend = ReversingBackend(gate=threading.Event())
    batcher = make(backend, max_queue_size=4)

    async def scenario() -> None:
        busy = await occupy(batcher, backend)
        gone = asyncio.create_task(batcher.submit(items("a", "b", "c", "d"), GREEDY))
        await until(lambda: batcher.depth("en-fr") == 4)
        gone.cancel()
        await until(lambda: batcher.depth("en-fr") == 0)
        kept = asyncio.create_task(batcher.submit(items("e", "f", "g", "h"), GREEDY))
        await until(lambda: batcher.depth("en-fr") == 4)
        backend.gate.set()
        assert [t.best.text for t in await kept] == ["e", "f", "g", "h"]
        await busy

    run(scenario)
    assert all("a" not in batch for batch in backend.batches)


def test_a_cancelled_callers_running_result_is_discarded() -> None:
    backend = ReversingBackend(gate=threading.Event())
    batcher = make(backend)

    async def scenario() -> None:
        gone = asyncio.create_task(batcher.submit(items("a b"), GREEDY))
        await until(lambda: bool(backend.batches))
        gone.cancel()
        backend.gate.set()
        [after] = await batcher.submit(items("c d"), GREEDY)
        assert after.best.text == "d c"
        assert gone.cancelled()

    run(scenario)


def test_an_inference_error_fails_only_its_batch() -> None:
    backend = ReversingBackend(gate=threading.Event(), fail_on="boom")
    batcher = make(backend)

    async def scenario() -> None:
        busy = await occupy(batcher, backend)
        bad = asyncio.create_task(batcher.submit(items("boom", "fine"), BEAM))
        good = asyncio.create_task(batcher.submit(items("also fine"), GREEDY))
        await until(lambda: batcher.depth("en-fr") == 3)
        backend.gate.set()
        with pytest.raises(RuntimeError, match="boom"):
            await bad
        assert (await good)[0].best.text == "fine also"
        await busy

    run(scenario)


def test_unknown_model() -> None:
    batcher = make(ReversingBackend())
    with pytest.raises(ModelNotFound, match="en-fr"):
        run(lambda: batcher.submit(items("x"), BatchKey("de-en", DecodeOptions())))


def test_close_completes_accepted_work_and_refuses_new() -> None:
    backend = ReversingBackend(gate=threading.Event())
    batcher = make(backend)

    async def scenario() -> None:
        busy = await occupy(batcher, backend)
        accepted = [asyncio.create_task(batcher.submit(items(f"w {i}"), GREEDY)) for i in range(5)]
        await until(lambda: batcher.depth("en-fr") == 5)
        closing = asyncio.create_task(batcher.close())
        await asyncio.sleep(0)  # one turn of the loop: the closing task has started and refuses new work
        with pytest.raises(Draining):
            await batcher.submit(items("late"), GREEDY)
        backend.gate.set()
        await closing
        assert [(await t)[0].best.text for t in accepted] == [f"{i} w" for i in range(5)]
        await busy

    run(scenario)


def test_close_fails_what_it_cannot_finish_in_time() -> None:
    backend = ReversingBackend(gate=threading.Event())
    batcher = make(backend)

    async def scenario() -> None:
        busy = await occupy(batcher, backend)
        waiting = asyncio.create_task(batcher.submit(items("x"), GREEDY))
        await until(lambda: batcher.depth("en-fr") == 1)
        await batcher.close(timeout=0.05)
        for task in (busy, waiting):
            with pytest.raises(Draining):
                await task

    try:
        run(scenario)
    finally:
        backend.gate.set()


def test_batch_metrics() -> None:
    backend = ReversingBackend()
    metrics = Metrics()
    batcher = Batcher({"en-fr": backend}, BatchLimits(), metrics)
    run(lambda: batcher.submit(items("a b", "c"), GREEDY))
    sample = metrics.registry.get_sample_value
    assert sample("mt_batch_size_sentences_count", {"model": "en-fr"}) == 1
    assert sample("mt_batch_size_sentences_sum", {"model": "en-fr"}) == 2
    assert sample("mt_batch_size_tokens_sum", {"model": "en-fr"}) == 6
    assert sample("mt_input_tokens_total", {"model": "en-fr"}) == 5
    assert sample("mt_output_tokens_total", {"model": "en-fr"}) == 3
    assert sample("mt_sentences_total", {"model": "en-fr"}) == 2
    assert sample("mt_queue_capacity", {"model": "en-fr"}) == 1024
    assert sample("mt_queue_depth", {"model": "en-fr"}) == 0
