"""Scale-out on one machine: two service processes behind one client with gRPC's round_robin balancing.

The client retries calls refused by the stopping replica (UNAVAILABLE, or CANCELLED: see service.client.RETRYABLE)
with the retry policy of its gRPC service config (`TranslatorClient(retries=2)`); the test retries nothing.
While a replica drains it keeps its port open and refuses new calls UNAVAILABLE until they stop coming (see
TranslationServer.stop), so a call whose every attempt lands on it may end UNAVAILABLE: refused cleanly, never
lost or wrong. Once the replica has exited, every call must succeed on the survivor.
"""

from __future__ import annotations

import random
import signal
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc

from service.client import TranslatorClient
from service.decoding.engine import Engine
from tests.integration.calls import FP32_MODEL, best_texts, served_options
from tests.service.harness import wait_for
from tests.support.round_robin import spread_of_calls
from tests.support.service_process import ServiceProcess, StartService
from tests.support.tiny import source_sentences

CALLERS = 4
GRACE_S = 10


def translate_calls(replica: ServiceProcess) -> float:
    return replica.sample_sum("mt_requests_total", method="Translate")


def test_round_robin_over_two_replicas_survives_one_stopping(
    start_service: StartService, models_root: Path, engines: dict[str, Engine]
) -> None:
    replicas = [start_service(models_root, grace_period_s=GRACE_S) for _ in range(2)]
    for replica in replicas:
        replica.wait_serving()
    texts = source_sentences(40, seed=31)
    translations = engines[FP32_MODEL].translate(texts, served_options())
    expected = {text: translation.best.text for text, translation in zip(texts, translations, strict=True)}
    target = "ipv4:" + ",".join(replica.address for replica in replicas)
    with TranslatorClient(target, load_balancing="round_robin", retries=2, timeout=30) as client:

        def check(text: str) -> None:
            assert best_texts(client.translate([text], model=FP32_MODEL)) == [expected[text]]

        spread = spread_of_calls(lambda: check(texts[0]), lambda: [translate_calls(replica) for replica in replicas])
        assert sum(spread) == 20 and min(spread) >= 8  # both replicas serve, in turns
        served = [translate_calls(replica) for replica in replicas]

        stopping, survivor = replicas
        done, exited = threading.Event(), threading.Event()

        def keep_calling(seed: int) -> int:
            rng, calls = random.Random(seed), 0
            while not done.is_set():
                began_after_exit = exited.is_set()
                try:
                    check(rng.choice(texts))
                except grpc.RpcError as exc:  # refused by the draining replica: allowed only while it drains
                    if began_after_exit or exc.code() != grpc.StatusCode.UNAVAILABLE:
                        raise
                calls += 1
            return calls

        with ThreadPoolExecutor(CALLERS) as pool:
            callers = [pool.submit(keep_calling, seed) for seed in range(CALLERS)]
            wait_for(lambda: min(map(translate_calls, replicas)) >= served[0] + 10, timeout=30, interval=0.05)
            stopping.signal(signal.SIGTERM)
            assert stopping.wait(GRACE_S + 5) == 0
            exited.set()
            after_stop = translate_calls(survivor)
            wait_for(lambda: translate_calls(survivor) >= after_stop + 20, timeout=30, interval=0.05)
            done.set()
            calls = sum(caller.result() for caller in callers)  # the first failed call, if any, raises here
    assert calls >= 40
