"""The server: gRPC and HTTP wiring, start-up with health and warm-up, and graceful shutdown."""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from prometheus_client import CollectorRegistry

from service.api.translation.v1 import translation_pb2 as pb
from service.api.translation.v1 import translation_pb2_grpc as pb_grpc
from service.config import ConfigError, PortBusy, Settings
from service.decoding.backend import ModelSet, TranslationBackend
from service.errors import ModelNotFound
from service.http.app import build_app
from service.http.routes import HttpApi, Readiness
from service.http.server import HttpServer
from service.rpc.accounting import CallAccounting
from service.rpc.auth import BearerAuthInterceptor
from service.rpc.parsing import DecodingInterceptor
from service.rpc.servicer import TranslatorServicer
from service.scheduling import SentenceScheduler, make_scheduler
from service.telemetry.build import build_info
from service.telemetry.metrics import Metrics
from service.telemetry.metrics_server import MetricsHttpServer, start_metrics_server
from service.text.language import DETECTOR
from service.translation import TranslationService
from service.types import DecodeOptions

log = logging.getLogger(__name__)

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["Translator"].full_name
WARM_UP_TEXT = "Hello world."
FLUSH_S = 1.0  # after the batcher drained, time for the answered calls to send their responses
QUIET_S = 0.25  # on shutdown the port closes once no request came or ended for this long (within the grace period)


@dataclass
class TranslationServer:
    """A built server; `start`, `warm_up`, then `stop` (what SIGTERM and SIGINT call)."""

    settings: Settings
    models: ModelSet
    metrics: Metrics
    batcher: SentenceScheduler
    grpc_server: grpc.aio.Server
    health: health.aio.HealthServicer
    port: int
    http: HttpServer | None = None
    readiness: Readiness = field(default_factory=Readiness)
    _metrics_http: MetricsHttpServer | None = field(default=None, init=False)

    @property
    def metrics_port(self) -> int | None:
        return self._metrics_http.port if self._metrics_http else None

    @property
    def http_port(self) -> int | None:
        return self.http.port if self.http else None

    async def start(self) -> None:
        """Opens the ports; health says NOT_SERVING until `warm_up` has run."""
        for service in ("", SERVICE_NAME):
            await self.health.set(service, health_pb2.HealthCheckResponse.NOT_SERVING)
        settings = self.settings
        for name, backend in self.models.items():
            m = backend.manifest
            info = (name, m.version, backend.provider, settings.providers[0], m.source_language, m.target_language)
            self.metrics.model_info.labels(*info).set(1)
        self.metrics.build_info.labels(*build_info()).set(1)
        self.metrics.initialize(self.models)
        self._metrics_http = start_metrics_server(
            self.metrics.registry,
            settings.host,
            settings.metrics_port,
            settings.metrics_read_timeout_s,
            settings.metrics_max_connections,
        )
        await self.grpc_server.start()
        if self.http is not None:
            await self.http.start()
        log.info(
            "serving %s on %s:%d (HTTP on port %s, metrics on port %d, tls=%s, auth=%s)",
            ", ".join(self.models),
            self.settings.host,
            self.port,
            self.http_port,
            self.metrics_port,
            self.settings.tls,
            bool(self.settings.auth_tokens),
        )

    async def warm_up(self) -> None:
        """Loads the language identifier, translates a sentence with every model, then reports SERVING."""
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, DETECTOR.load)
        for name, backend in self.models.items():
            start = time.perf_counter()
            await loop.run_in_executor(None, backend.translate, [WARM_UP_TEXT], DecodeOptions())
            log.info("warmed up %s in %.3f s", name, time.perf_counter() - start)
        for service in ("", SERVICE_NAME):
            await self.health.set(service, health_pb2.HealthCheckResponse.SERVING)
        self.readiness.serving = True

    async def stop(self) -> None:
        """Graceful shutdown: NOT_SERVING, refuse new work, finish accepted work within the grace period,
        and close the port once requests stop coming."""
        grace = self.settings.grace_period_s
        log.info("shutting down; finishing accepted work within %.1f s", grace)
        start = time.monotonic()
        self.readiness.serving = False
        await self.health.enter_graceful_shutdown()
        await self.batcher.close(timeout=grace)
        await self._until_quiet(start + grace)
        closing = [self.grpc_server.stop(max(grace - (time.monotonic() - start), FLUSH_S))]
        if self.http is not None:
            closing.append(self.http.stop())
        await asyncio.gather(*closing)
        if self._metrics_http is not None:
            self._metrics_http.close()
        log.info("stopped")

    async def _until_quiet(self, end: float) -> None:
        """Waits (refusing new requests UNAVAILABLE) until none came or ended for QUIET_S, or until `end`.

        Closing the port sooner cuts off clients still sending: grpc answers the calls it has received but
        not yet handed to the server CANCELLED (grpc/grpc#41785), which clients do not retry.
        """
        while (left := min(self.batcher.last_active + QUIET_S, end) - time.monotonic()) > 0:
            await asyncio.sleep(left)


def build_server(
    settings: Settings, backends: Mapping[str, TranslationBackend], registry: CollectorRegistry | None = None
) -> TranslationServer:
    """Wires the models into a server bound to the configured port; call it inside the serving event loop."""
    try:
        models = ModelSet(backends, settings.default_model)
    except ModelNotFound as exc:
        raise ConfigError(f"default_model: {exc}") from None
    metrics = Metrics(registry)
    batcher = make_scheduler(settings, models, metrics)
    interceptors: list[grpc.aio.ServerInterceptor] = [CallAccounting(metrics)]
    if settings.auth_tokens:
        tokens = [t.get_secret_value() for t in settings.auth_tokens]
        interceptors.append(BearerAuthInterceptor(tokens, metrics))
    interceptors.append(DecodingInterceptor(metrics))
    size = settings.max_message_bytes
    grpc_server = grpc.aio.server(
        interceptors=interceptors,
        options=[
            ("grpc.max_send_message_length", size),
            ("grpc.max_receive_message_length", size),
            ("grpc.so_reuseport", 0),  # a second server on the port fails to start instead of sharing it
            # Calls open per connection; with max_stream_inflight per stream, a connection has at most their product
            # of requests read and not yet answered. A client queues the calls beyond it; grpc's "overload
            # protection" would instead refuse (UNAVAILABLE) a call sent the moment another ended.
            ("grpc.max_concurrent_streams", settings.max_connection_streams),
            ("grpc.http.overload_protection", 0),
        ],
    )
    service = TranslationService(models, batcher, settings)
    pb_grpc.add_TranslatorServicer_to_server(TranslatorServicer(service, metrics, settings), grpc_server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, grpc_server)
    reflection.enable_server_reflection(
        [SERVICE_NAME, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME],
        grpc_server,
    )
    port = _bind(grpc_server, settings)
    readiness = Readiness()
    http = None
    if settings.http_port is not None:
        http = HttpServer(build_app(HttpApi(service, metrics, settings, readiness)), settings)
    return TranslationServer(settings, models, metrics, batcher, grpc_server, health_servicer, port, http, readiness)


def _bind(grpc_server: grpc.aio.Server, settings: Settings) -> int:
    """Binds the gRPC port; raises ConfigError when it is taken."""
    address = f"{settings.host}:{settings.grpc_port}"
    try:
        if settings.tls_cert_file is not None and settings.tls_key_file is not None:
            credentials = grpc.ssl_server_credentials(
                [(settings.tls_key_file.read_bytes(), settings.tls_cert_file.read_bytes())]
            )
            return grpc_server.add_secure_port(address, credentials)
        return grpc_server.add_insecure_port(address)
    except RuntimeError:  # grpc's "Failed to bind to address"
        raise PortBusy("grpc_port", settings.host, settings.grpc_port) from None


def load_backends(settings: Settings) -> dict[str, TranslationBackend]:
    """Loads every model folder (a subfolder with a manifest.json) of `models_root`, keyed by model name."""
    root = Path(settings.models_root)
    folders = sorted(p for p in root.glob("*") if (p / "manifest.json").is_file()) if root.is_dir() else []
    if not folders:
        raise ConfigError(f"models_root {root}: no model folder (a subfolder with a manifest.json) found")
    from service.decoding.engine import Engine  # imported here: it pulls in onnxruntime

    backends: dict[str, TranslationBackend] = {}
    for folder in folders:
        interface = None if settings.decoder_interface == "auto" else settings.decoder_interface
        engine = Engine.load(
            folder, providers=settings.providers, intra_op_threads=settings.intra_op_threads, interface=interface
        )
        name = engine.manifest.name
        if name in backends:
            raise ConfigError(f"models_root {root}: two models are named {name!r}")
        backends[name] = engine
        log.info("loaded %s %s from %s on %s", name, engine.manifest.version, folder, engine.provider)
    return backends


async def serve(settings: Settings, backends: Mapping[str, TranslationBackend]) -> None:
    """Serves until SIGTERM or SIGINT, then shuts down gracefully."""
    server = build_server(settings, backends)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    await server.start()
    await server.warm_up()
    await stopping.wait()
    await server.stop()
