"""uvicorn inside the service's event loop, sharing its translation service, metrics, limits, tokens and TLS."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import socket
from collections.abc import Iterator

import uvicorn
from starlette.types import ASGIApp

from service.config import ConfigError, Settings

log = logging.getLogger(__name__)


class _EmbeddedServer(uvicorn.Server):
    """A uvicorn server that leaves SIGTERM and SIGINT to the service, which stops it with the gRPC server."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class HttpServer:
    """The HTTP port, bound when built: `start` serves on it, `stop` lets running requests finish, then closes it."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self._socket = _bind(settings.host, settings.http_port or 0)
        config = uvicorn.Config(
            app,
            log_config=None,
            access_log=False,
            lifespan="off",
            server_header=False,
            ssl_certfile=settings.tls_cert_file,
            ssl_keyfile=settings.tls_key_file,
            timeout_graceful_shutdown=math.ceil(settings.grace_period_s),
        )
        self._server = _EmbeddedServer(config)
        self._task: asyncio.Task[None] | None = None

    @property
    def port(self) -> int:
        port: int = self._socket.getsockname()[1]
        return port

    async def start(self) -> None:
        """Serves on the bound port; returns once uvicorn has started."""
        self._task = asyncio.create_task(self._server.serve(sockets=[self._socket]))
        while not self._server.started:
            if self._task.done():
                await self._task  # raises what stopped it
                raise RuntimeError("the HTTP server ended while starting")
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        """Closes the port, finishing open requests within the grace period."""
        if self._task is None:
            self._socket.close()
            return
        self._server.should_exit = True
        await self._task


def _bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on host:port (0 picks a free port); raises ConfigError naming the setting.

    Made with protocol IPPROTO_TCP, not 0 (socket.create_server's): asyncio sets TCP_NODELAY only on connections
    of such sockets, and without it a response written in two parts (headers, body) waits ~40 ms for the
    client's delayed acknowledgement.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise ConfigError(f"http_port (MT_HTTP_PORT): cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.setblocking(False)
    return sock
