"""Round-robin checks that do not depend on how fast a client's connections come up."""

from __future__ import annotations

from collections.abc import Callable

Counts = Callable[[], list[float]]


def spread_of_calls(
    call: Callable[[], object], served: Counts, calls: int = 20, warm_up_limit: int = 200
) -> list[float]:
    """How `calls` calls spread over the servers once each has served one (served() counts each server's calls).

    Until a connection is up, round robin sends its calls to the others: the first calls say nothing of the spread.
    """
    for _ in range(warm_up_limit):
        if min(served()) > 0:
            break
        call()
    else:
        raise AssertionError(f"after {warm_up_limit} calls some server has served none: {served()}")
    before = served()
    for _ in range(calls):
        call()
    return [after - then for after, then in zip(served(), before, strict=True)]
