"""grpc's own count of the calls its core started on the gRPC servers of this process, read from channelz.

The servers count the calls they handle in mt_requests_total (service.telemetry.metrics); a call grpc ends before
any server code sees it would show only here. No public grpc API has these counts: they come from the functions
behind grpcio-channelz, and the metric is left out if those are missing.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

NAME = "mt_grpc_calls_started"
HELP = (
    "Calls grpc's core started on this process's gRPC servers, every method (health checks and reflection too);"
    " a call whose deadline passes before it leaves the client never reaches them"
)


def _channelz() -> Any:
    """grpc's channelz functions, or None."""
    try:
        from grpc._cython import cygrpc  # type: ignore[attr-defined]
    except ImportError:
        return None
    return cygrpc if hasattr(cygrpc, "channelz_get_servers") else None


class GrpcCallsCollector(Collector):
    """Exports mt_grpc_calls_started_total."""

    def __init__(self) -> None:
        self._channelz = _channelz()

    def collect(self) -> Iterator[CounterMetricFamily]:
        if self._channelz is None:
            return
        yield CounterMetricFamily(NAME, HELP, value=self._started())

    def _started(self) -> int:
        started, start_id = 0, 0
        while True:
            page = json.loads(self._channelz.channelz_get_servers(start_id))
            servers = page.get("server", [])
            started += sum(int(server["data"].get("callsStarted", 0)) for server in servers)
            if page.get("end", True) or not servers:
                return started
            start_id = max(int(server["ref"]["serverId"]) for server in servers) + 1
