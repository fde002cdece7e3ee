"""Each way a request can fail, and the status code and message it gets."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc
import pytest

from service.api.translation.v1 import translation_pb2 as pb
from service.api.translation.v1 import translation_pb2_grpc as pb_grpc
from tests.service.fakes import ReversingBackend
from tests.service.harness import ServerThread, wait_for

Start = Callable[..., ServerThread]
LIMITS = {"max_texts_per_request": 3, "max_request_chars": 50, "max_queue_size": 4}


@pytest.mark.parametrize(
    ("request_fields", "message"),
    [
        ({"texts": []}, "texts is empty; send at least one text"),
        ({"texts": ["a"] * 4}, "4 texts in one request; at most 3 are allowed"),
        ({"texts": ["ok", "x" * 49]}, "the texts have 51 characters in all; at most 50 are allowed in one request"),
        ({"texts": ["Go now. Run fast. Eat well.", "Sit down. Stand up."]}, "the texts have 5 sentences in all"),
        ({"texts": ["a"], "no_repeat_ngram_size": 1}, "no_repeat_ngram_size is 1; it must be 0 (no guard) or"),
        ({"texts": ["a"], "no_repeat_ngram_size": 17}, "no_repeat_ngram_size is 17; it must be 0 (no guard) or"),
        ({"texts": ["a"], "beam_size": 9}, "beam_size is 9; it must be between 1 and 8 (0 means 1)"),
        ({"texts": ["a"], "beam_size": 2, "n_best": 3}, "n_best is 3; it must be between 1 and 2"),
        ({"texts": ["a"], "n_best": 2}, "n_best is 2; it must be between 1 and 1"),
        ({"texts": ["a"], "max_length": 513}, "max_length is 513; at most 512 is allowed"),
        ({"texts": ["a"], "length_penalty": -1}, "length_penalty is -1; it must be in (0, 5] (0 means 1.0)"),
        ({"texts": ["a"], "length_penalty": 5.5}, "length_penalty is 5.5; it must be in (0, 5]"),
        ({"texts": ["a"], "length_penalty": float("nan")}, "length_penalty is nan"),
    ],
)
def test_invalid_requests(start_server: Start, request_fields: dict[str, Any], message: str) -> None:
    server = start_server(**LIMITS)
    stub = pb_grpc.TranslatorStub(server.channel())
    with pytest.raises(grpc.RpcError) as error:
        stub.Translate(pb.TranslateRequest(**request_fields), timeout=10)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in error.value.details()
    labels = {"method": "Translate", "model": "en-fr", "code": "INVALID_ARGUMENT"}
    assert server.sample("mt_requests_total", labels) == 1


def test_limits_themselves_are_allowed(start_server: Start) -> None:
    server = start_server(**LIMITS)
    with server.client() as client:
        response = client.translate(["x" * 42, "Go. Run.", ""], beam_size=8, n_best=8, max_length=512, length_penalty=5)
        assert len(response.translations) == 3
        response = client.translate(["a b"], no_repeat_ngram_size=16)
        assert response.translations[0].hypotheses[0].text == "b a"


def test_a_sentence_too_long_for_the_model_is_cut_and_every_part_translated(start_server: Start) -> None:
    """Cut at punctuation first, then between words; nothing refused, nothing left out."""
    backend = ReversingBackend(max_source_tokens=4)
    server = start_server({"en-fr": backend})
    with server.client() as client:
        response = client.translate(["a b", "a b, c d e f g"])
    assert [t.hypotheses[0].text for t in response.translations] == ["b a", "b, a e d c g f"]
    assert [(s.start, s.end) for s in response.translations[1].segments] == [(0, 4), (5, 10), (11, 14)]
    assert all(backend.count_tokens(text) <= 4 for batch in backend.batches for text in batch)


def test_unknown_model(start_server: Start) -> None:
    server = start_server()
    with server.client() as client, pytest.raises(grpc.RpcError) as error:
        client.translate(["a"], model="xx-yy")
    assert error.value.code() == grpc.StatusCode.NOT_FOUND
    assert "available models: en-fr" in error.value.details()
    assert server.sample("mt_requests_total", {"method": "Translate", "model": "", "code": "NOT_FOUND"}) == 1


class Blocked:
    """A server whose model is busy on a first request until `release()`."""

    def __init__(self, start: Start, **settings: Any) -> None:
        self.backend = ReversingBackend()
        self.server = start({"en-fr": self.backend}, **settings)
        self.backend.gate.clear()
        self.stub = pb_grpc.TranslatorStub(self.server.channel())
        self.busy = self.send(["busy"])
        wait_for(lambda: ["busy"] in self.backend.batches)

    def send(self, texts: list[str], timeout: float = 10) -> grpc.Future:
        return self.stub.Translate.future(pb.TranslateRequest(texts=texts), timeout=timeout)

    def release(self) -> None:
        self.backend.gate.set()
        assert self.busy.result().translations[0].hypotheses[0].text == "busy"


def test_full_queue_is_resource_exhausted(start_server: Start) -> None:
    blocked = Blocked(start_server, max_queue_size=2, max_texts_per_request=2)
    waiting = blocked.send(["a", "b"])
    wait_for(lambda: blocked.server.depth() == 2)
    with pytest.raises(grpc.RpcError) as error:
        blocked.stub.Translate(pb.TranslateRequest(texts=["c"]), timeout=10)
    assert error.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "retry later" in error.value.details()
    blocked.release()
    assert len(waiting.result().translations) == 2


def test_blank_texts_count_against_the_queue(start_server: Start) -> None:
    """Blank texts need no model, yet each takes a place of the queue's room: with one place left, one blank text
    is answered and two are refused, unary and streamed; once the queue drains, they are answered."""
    blocked = Blocked(start_server, max_queue_size=3, max_texts_per_request=3)
    waiting = blocked.send(["a", "b"])
    wait_for(lambda: blocked.server.depth() == 2)
    one, two = pb.TranslateRequest(texts=[" "]), pb.TranslateRequest(texts=["", "\n"], id="two")
    assert blocked.stub.Translate(one, timeout=10).translations[0].hypotheses[0].text == ""
    with pytest.raises(grpc.RpcError) as error:
        blocked.stub.Translate(two, timeout=10)
    assert error.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "2 more (2 blank texts, counted as one sentence each) would exceed its queue of 3" in error.value.details()
    [streamed] = blocked.stub.TranslateStream(iter([two]), timeout=10)
    assert (streamed.id, streamed.status.code) == ("two", grpc.StatusCode.RESOURCE_EXHAUSTED.value[0])
    blocked.release()
    assert len(waiting.result().translations) == 2
    assert [t.hypotheses[0].text for t in blocked.stub.Translate(two, timeout=10).translations] == ["", ""]


def test_deadline_exceeded_and_its_slot_freed(start_server: Start) -> None:
    blocked = Blocked(start_server)
    late = blocked.send(["never computed"], timeout=0.2)
    with pytest.raises(grpc.RpcError) as error:
        late.result()
    assert error.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    wait_for(lambda: blocked.server.depth() == 0)
    blocked.release()
    assert ["never computed"] not in blocked.backend.batches


def test_cancelled_call_frees_its_queue_slots(start_server: Start) -> None:
    blocked = Blocked(start_server, max_queue_size=2, max_texts_per_request=2)
    gone = blocked.send(["a", "b"])
    wait_for(lambda: blocked.server.depth() == 2)
    gone.cancel()
    wait_for(lambda: blocked.server.depth() == 0)
    kept = blocked.send(["c", "d"])
    wait_for(lambda: blocked.server.depth() == 2)
    blocked.release()
    assert [t.hypotheses[0].text for t in kept.result().translations] == ["c", "d"]
    assert ["a", "b"] not in blocked.backend.batches


def test_oversized_messages_are_refused(start_server: Start) -> None:
    server = start_server(max_message_bytes=1024)
    with server.client() as client, pytest.raises(grpc.RpcError) as error:
        client.translate(["word " * 300])
    assert error.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
