"""Runs a real TranslationServer on its own event loop thread, for blocking clients in tests."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Coroutine, Mapping
from typing import Any, TypeVar

import grpc

from service.client import TranslatorClient
from service.config import Settings
from service.decoding.backend import TranslationBackend
from service.server import TranslationServer, build_server

T = TypeVar("T")


class ServerThread:
    """A server on 127.0.0.1 with free ports; `call` runs a coroutine on its loop."""

    def __init__(self, backends: Mapping[str, TranslationBackend], warm: bool = True, **settings: Any):
        self.settings = Settings(**{"host": "127.0.0.1", "grpc_port": 0, "metrics_port": 0, "http_port": 0, **settings})
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        self.server: TranslationServer = self.call(self._build(backends))
        self.call(self.server.start())
        if warm:
            self.call(self.server.warm_up())
        self.stopped = False

    async def _build(self, backends: Mapping[str, TranslationBackend]) -> TranslationServer:
        return build_server(self.settings, backends)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.server.port}"

    @property
    def http_url(self) -> str:
        scheme = "https" if self.settings.tls else "http"
        return f"{scheme}://127.0.0.1:{self.server.http_port}"

    def call(self, coroutine: Coroutine[Any, Any, T], timeout: float = 20) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def client(self, **kwargs: Any) -> TranslatorClient:
        return TranslatorClient(self.address, **kwargs)

    def channel(self) -> grpc.Channel:
        return grpc.insecure_channel(self.address)

    def sample(self, name: str, labels: dict[str, str]) -> float:
        """The sum of the samples `name` whose labels include `labels`."""
        families = self.server.metrics.registry.collect()
        samples = [s for family in families for s in family.samples if s.name == name]
        return sum(s.value for s in samples if labels.items() <= s.labels.items())

    def depth(self, model: str = "en-fr") -> int:
        return self.server.batcher.depth(model)

    def stop(self) -> None:
        if not self.stopped:
            self.stopped = True
            self.call(self.server.stop())

    def close(self) -> None:
        self.stop()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        self.loop.close()


def wait_for(condition: Callable[[], bool], timeout: float = 10, interval: float = 0.002) -> None:
    """Polls `condition` every `interval` seconds until it holds; fails the test after `timeout` seconds."""
    end = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < end, "condition not reached in time"
        time.sleep(interval)
