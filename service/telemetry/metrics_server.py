"""The /metrics endpoint: prometheus_client's WSGI app on a threaded server whose connections are bounded.

A connection gets a thread of its own (scrapes are rare and short), at most `max_connections` at once (more are
closed at once), and is closed when the client sends nothing for `read_timeout_s`: a client that opens
connections and never finishes a request cannot pile up threads and descriptors.
"""

from __future__ import annotations

import errno
import logging
import socket
import threading
from dataclasses import dataclass, field
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

from prometheus_client import CollectorRegistry, disable_created_metrics, make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer

from service.config import PortBusy

log = logging.getLogger(__name__)


class _Handler(WSGIRequestHandler):
    """Reads with the server's timeout; writes no access log."""

    server: _BoundedServer

    def setup(self) -> None:
        super().setup()
        self.connection.settimeout(self.server.read_timeout_s)

    def log_message(self, format: str, *args: Any) -> None:
        """Scrapes are not logged."""


class _BoundedServer(ThreadingWSGIServer):
    """A thread per connection, at most `max_connections` at once; a connection that fails is only logged."""

    read_timeout_s: float
    slots: threading.BoundedSemaphore

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self.slots.acquire(blocking=False):
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("metrics connection from %s failed", client_address, exc_info=True)


@dataclass
class MetricsHttpServer:
    """The running /metrics endpoint."""

    httpd: _BoundedServer
    thread: threading.Thread = field(repr=False)

    @property
    def port(self) -> int:
        port: int = self.httpd.server_address[1]
        return port

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


def start_metrics_server(
    registry: CollectorRegistry, host: str, port: int, read_timeout_s: float, max_connections: int
) -> MetricsHttpServer:
    """Serves `registry` over HTTP on host:port (0 picks a free port); raises PortBusy when the port is taken.

    Without the `*_created` series prometheus_client would add to every counter and histogram: they are not
    part of the metrics contract, and Prometheus would store each as one more series. (A process-wide switch.)
    """
    disable_created_metrics()

    class Server(_BoundedServer):
        address_family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0][0]

    Server.read_timeout_s = read_timeout_s
    Server.slots = threading.BoundedSemaphore(max_connections)
    try:
        httpd = make_server(host, port, make_wsgi_app(registry), Server, handler_class=_Handler)
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE:
            raise
        raise PortBusy("metrics_port", host, port) from None
    thread = threading.Thread(target=httpd.serve_forever, name="metrics-http", daemon=True)
    thread.start()
    return MetricsHttpServer(httpd, thread)
