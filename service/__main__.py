"""`python -m service`: serve every model under MT_MODELS_ROOT over gRPC until SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import logging
import os
import sys

from service.config import ConfigError, load_settings
from service.decoding.manifest import ModelLoadError
from service.telemetry.logs import logging_to_stderr


def main() -> int:
    """Exit status: 0 after a graceful shutdown, 2 for bad settings, no models or a model that does not load."""
    try:
        settings = load_settings()
        quiet_grpc_core()
        from service.server import load_backends, serve  # imports grpc: after quiet_grpc_core

        with logging_to_stderr(settings.log_level, settings.log_json):
            backends = load_backends(settings)
            asyncio.run(serve(settings, backends))
    except (ConfigError, ModelLoadError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def quiet_grpc_core() -> None:
    """grpc's C core writes its own plain-text lines to stderr, INFO ones included (a failed TLS handshake), and
    reads its verbosity once, when grpc is imported: only its errors (with JSON logs, as JSON lines of logger
    "grpc"; service.telemetry.native_logs). A GRPC_VERBOSITY of the environment wins."""
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")


def exit_now(status: int) -> None:
    """Exits with `status` once the output is flushed, without the interpreter's teardown: freeing the sessions,
    gRPC and the modules took ~0.6 s after a finished shutdown, and the process must end within the grace
    period + 1 s (an orchestrator kills it then)."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


if __name__ == "__main__":
    exit_now(main())
