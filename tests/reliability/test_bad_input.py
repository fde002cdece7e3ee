"""Bad input: fuzzed requests, malformed bytes and oversized messages each get their status; the server goes on."""

from __future__ import annotations

import pytest

from service.client import TranslatorClient
from service.client import main as client_main
from tests.reliability.tally import TALLY
from tests.service.harness import ServerThread


def test_text_protobuf_cannot_carry_is_refused_by_the_client(
    server: ServerThread, capsys: pytest.CaptureFixture[str]
) -> None:
    """A lone surrogate (what undecodable bytes in an argument become) is a clear client error; nothing is sent."""
    before = server.sample("mt_requests_total", {"method": "Translate", "model": "en-fr", "code": "OK"})
    message = r"texts\[1\] is not valid Unicode: surrogates not allowed \('\\udcff' at position 3\)"
    with TranslatorClient(server.address) as client, pytest.raises(ValueError, match=message):
        client.translate(["fine", "bad\udcff"])
    assert client_main(["--address", server.address, "caf\udce9"]) == 1
    error = "error: texts[0] is not valid Unicode: surrogates not allowed ('\\udce9' at position 3)\n"
    assert capsys.readouterr().err == error
    assert server.sample("mt_requests_total", {"method": "Translate", "model": "en-fr", "code": "OK"}) == before
    TALLY.bad_inputs += 2
