"""Container health check: ask the local server for gRPC health status.

Exit 0 when the overall status (service "") is SERVING, 1 otherwise.
Reads the same MT_ variables as the server: MT_GRPC_PORT, and MT_TLS_CERT_FILE
when the server speaks TLS. HEALTHCHECK_TIMEOUT_S (default 2) bounds the call;
HEALTHCHECK_SERVER_NAME overrides the TLS host name checked against the certificate.
"""

from __future__ import annotations

import os
import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


def _channel(target: str) -> grpc.Channel:
    cert_file = os.environ.get("MT_TLS_CERT_FILE")
    if not cert_file:
        return grpc.insecure_channel(target)
    with open(cert_file, "rb") as f:
        credentials = grpc.ssl_channel_credentials(root_certificates=f.read())
    options = []
    server_name = os.environ.get("HEALTHCHECK_SERVER_NAME")
    if server_name:
        options.append(("grpc.ssl_target_name_override", server_name))
    return grpc.secure_channel(target, credentials, options=options)


def main() -> int:
    port = os.environ.get("MT_GRPC_PORT", "50051")
    timeout = float(os.environ.get("HEALTHCHECK_TIMEOUT_S", "2"))
    target = f"localhost:{port}"
    try:
        with _channel(target) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            reply = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=timeout)
    except grpc.RpcError as err:
        print(f"{target}: {err.code().name}: {err.details()}", file=sys.stderr)
        return 1
    except OSError as err:
        print(f"cannot read TLS certificate: {err}", file=sys.stderr)
        return 1
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
    print(f"{target}: {status}")
    return 0 if reply.status == health_pb2.HealthCheckResponse.SERVING else 1


if __name__ == "__main__":
    sys.exit(main())
