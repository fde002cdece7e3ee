"""Cutting a batch into encoder calls of similar length (service/decoding/length_groups.py)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from service.decoding.length_groups import length_groups


def work(lengths: list[int], groups: list[list[int]], call_cost: int) -> int:
    return sum(call_cost + len(g) * max(lengths[i] for i in g) for g in groups)


def cheapest_cut_of_sorted(lengths: list[int], call_cost: int) -> int:
    """Brute force: the least work over every way of cutting the sorted lengths into consecutive groups."""
    ordered = sorted(range(len(lengths)), key=lambda i: lengths[i])
    best = None
    for cuts in itertools.product([False, True], repeat=len(ordered) - 1):
        groups, current = [], [ordered[0]]
        for index, cut in zip(ordered[1:], cuts, strict=True):
            if cut:
                groups.append(current)
                current = []
            current.append(index)
        groups.append(current)
        total = work(lengths, groups, call_cost)
        best = total if best is None else min(best, total)
    assert best is not None
    return best


@pytest.mark.parametrize("seed", range(20))
def test_groups_partition_the_batch_with_the_least_work(seed: int) -> None:
    rng = np.random.default_rng(seed)
    lengths = [int(x) for x in rng.integers(1, 60, size=int(rng.integers(1, 11)))]
    call_cost = int(rng.integers(0, 40))
    groups = length_groups(lengths, call_cost)
    assert sorted(int(i) for g in groups for i in g) == list(range(len(lengths)))
    assert work(lengths, [list(g) for g in groups], call_cost) == cheapest_cut_of_sorted(lengths, call_cost)
    longest = [max(lengths[i] for i in g) for g in groups]
    assert longest == sorted(longest)  # shortest group first


def test_similar_lengths_share_one_call_and_very_different_ones_do_not() -> None:
    assert [list(g) for g in length_groups([12, 13, 12, 14])] == [[0, 2, 1, 3]]
    assert [list(g) for g in length_groups([7])] == [[0]]
    assert [sorted(g) for g in length_groups([5] * 10 + [100] * 10)] == [list(range(10)), list(range(10, 20))]
