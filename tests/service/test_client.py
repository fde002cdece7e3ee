"""The Python client's channel settings against real servers: load balancing and retries."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from service.client import TranslatorClient
from tests.service.harness import ServerThread
from tests.support.round_robin import spread_of_calls

Start = Callable[..., ServerThread]
CODE_OK = {"method": "Translate", "model": "en-fr", "code": "OK"}


def test_round_robin_spreads_calls_over_every_server(start_server: Start) -> None:
    servers = [start_server(), start_server()]
    target = "ipv4:" + ",".join(server.address for server in servers)
    with TranslatorClient(target, load_balancing="round_robin", retries=2) as client:
        spread = spread_of_calls(
            lambda: client.translate(["a b"]),
            lambda: [server.sample("mt_requests_total", CODE_OK) for server in servers],
        )
    assert sum(spread) == 20 and min(spread) >= 8  # strict turns give 10 each


def test_pick_first_sends_every_call_to_one_server(start_server: Start) -> None:
    servers = [start_server(), start_server()]
    with TranslatorClient("ipv4:" + ",".join(server.address for server in servers)) as client:
        for _ in range(4):
            client.translate(["a b"])
    assert sorted(server.sample("mt_requests_total", CODE_OK) for server in servers) == [0, 4]


def test_retries_are_bounded() -> None:
    with pytest.raises(ValueError, match="retries must be between 0 and 4, not 5"):
        TranslatorClient(retries=5)
