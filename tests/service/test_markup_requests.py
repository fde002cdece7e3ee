"""HTML requests against a real server over the word-reversing fake model: the limits of a page."""

from __future__ import annotations

from collections.abc import Callable

import grpc
import pytest

from tests.service.harness import ServerThread
from tests.support.markup import tag_tree, text_of

Start = Callable[..., ServerThread]


def test_a_page_of_more_blocks_than_the_queue_takes_is_invalid(start_server: Start) -> None:
    """RESOURCE_EXHAUSTED ("retry later") would be wrong: no retry could ever fit it."""
    server = start_server(max_queue_size=4, max_texts_per_request=2)
    page = "".join(f"<p>block {n}</p>" for n in range(5))
    with server.client() as client:
        with pytest.raises(grpc.RpcError) as error:
            client.translate([page], format="html")
        fits = client.translate([page[: page.index("<p>block 4")]], format="html").translations[0]
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.value.details() == (
        "the texts have 5 blocks in all; at most 4 (the size of a model's queue) are allowed in one request"
    )
    assert text_of(fits.hypotheses[0].text) == "0 block1 block2 block3 block"
    assert tag_tree(fits.hypotheses[0].text) == (("p", (), ()),) * 4


def test_a_page_nested_deeper_than_browsers_allow_is_invalid(start_server: Start) -> None:
    server = start_server(max_request_chars=10_000)
    with server.client() as client, pytest.raises(grpc.RpcError) as error:
        client.translate(["fine", "<div>" * 513 + "deep"], format="html")
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.value.details() == "texts[1] nests elements more than 512 deep; at most 512 levels are allowed"


def test_blocks_of_several_texts_share_the_batches(start_server: Start) -> None:
    server = start_server()
    backend = server.server.models["en-fr"]
    with server.client() as client:
        response = client.translate(["<p>one two</p><p>three</p>", "<h1>four <b>five</b></h1>"], format="html")
    assert [text_of(t.hypotheses[0].text) for t in response.translations] == ["two onethree", "five four"]
    assert sorted(text for batch in backend.batches[-1:] for text in batch) == ["four five", "one two", "three"]
