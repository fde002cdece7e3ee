"""What one client connection may have open at the server: at most `max_connection_streams` calls."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import grpc

from service.api.translation.v1 import translation_pb2 as pb
from service.api.translation.v1 import translation_pb2_grpc as pb_grpc
from tests.service.fakes import ReversingBackend
from tests.service.harness import ServerThread, wait_for

Start = Callable[..., ServerThread]
LIMIT = 2
SETTLE_S = 0.3  # time for calls already sent to reach the handlers


def own_connection(server: ServerThread) -> pb_grpc.TranslatorStub:
    """A stub on a connection of its own (channels to one address otherwise share one)."""
    channel = grpc.insecure_channel(server.address, options=[("grpc.use_local_subchannel_pool", 1)])
    return pb_grpc.TranslatorStub(channel)


def in_flight(server: ServerThread) -> float:
    """Requests the server is handling, every method."""
    return server.sample("mt_inflight_requests", {})


def test_calls_beyond_the_limit_of_a_connection_wait_until_one_ends(start_server: Start) -> None:
    """With the model busy, a connection's calls beyond the limit (unary and streaming) are not started; another
    connection's are; once the model is free every call gets its own answer."""
    backend = ReversingBackend(gate=threading.Event())
    server = start_server({"en-fr": backend}, max_connection_streams=LIMIT)
    crowded, other = own_connection(server), own_connection(server)
    started = [crowded.Translate.future(pb.TranslateRequest(texts=[f"a{n} b"]), timeout=30) for n in range(LIMIT)]
    wait_for(lambda: in_flight(server) == LIMIT)
    extra = crowded.Translate.future(pb.TranslateRequest(texts=["c d"]), timeout=30)
    extra_stream = crowded.TranslateStream(iter([pb.TranslateRequest(texts=["e f"], id="s")]), timeout=30)
    elsewhere = other.Translate.future(pb.TranslateRequest(texts=["g h"]), timeout=30)
    wait_for(lambda: in_flight(server) >= LIMIT + 1)
    time.sleep(SETTLE_S)
    assert in_flight(server) == LIMIT + 1, "calls beyond the connection's limit were started"
    backend.gate.set()
    answers = [call.result().translations[0].hypotheses[0].text for call in (*started, extra, elsewhere)]
    assert answers == [*(f"b a{n}" for n in range(LIMIT)), "d c", "h g"]
    [streamed] = list(extra_stream)
    assert (streamed.id, streamed.translations[0].hypotheses[0].text) == ("s", "f e")
