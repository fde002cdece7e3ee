"""The Python client against real servers: load balancing, retries, and the format of the texts."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from service.api.translation.v1 import translation_pb2 as pb
from service.client import TranslatorClient, text_format
from tests.service.harness import ServerThread
from tests.support.markup import tag_tree, text_of
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


def test_format_by_name_or_number(start_server: Start) -> None:
    server = start_server()
    with server.client() as client:
        html = client.translate(["<p>one <i>two</i></p>"], format="HTML").translations[0].hypotheses[0].text
        plain = client.translate(["<p>one two</p>"], format=pb.TEXT_FORMAT_PLAIN).translations[0].hypotheses[0].text
    assert text_of(html) == "two one" and tag_tree(html) == (("p", (), (("i", (), ()),)),)
    assert plain == "two</p> <p>one"
    with pytest.raises(ValueError, match="format is 'xml'; it must be one of 'plain', 'html'"):
        text_format("xml")
