"""Bearer-token authentication and TLS."""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from grpc_health.v1 import health_pb2, health_pb2_grpc

from service.api.translation.v1 import translation_pb2 as pb
from tests.service.harness import ServerThread

Start = Callable[..., ServerThread]


@pytest.mark.parametrize("token", [None, "wrong", ""])
def test_calls_without_a_valid_token_are_unauthenticated(start_server: Start, token: str | None) -> None:
    server = start_server(auth_tokens=["s3cret", "other"])
    with server.client(token=token) as client:
        for call in (lambda: client.translate(["a"]), client.list_models):
            with pytest.raises(grpc.RpcError) as error:
                call()
            assert error.value.code() == grpc.StatusCode.UNAUTHENTICATED
            assert "authorization: Bearer <token>" in error.value.details()
        with pytest.raises(grpc.RpcError) as error:
            list(client.translate_stream([pb.TranslateRequest(texts=["a"])]))
        assert error.value.code() == grpc.StatusCode.UNAUTHENTICATED
    refused = {"method": "Translate", "model": "", "code": "UNAUTHENTICATED"}
    assert server.sample("mt_requests_total", refused) == 1


def test_a_valid_token_passes_and_health_needs_none(start_server: Start) -> None:
    server = start_server(auth_tokens=["s3cret", "other"])
    for token in ("s3cret", "other"):
        with server.client(token=token) as client:
            assert client.translate(["a b"]).translations[0].hypotheses[0].text == "b a"
    health = health_pb2_grpc.HealthStub(server.channel())
    response = health.Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
    assert response.status == health_pb2.HealthCheckResponse.SERVING


def _self_signed(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "server.crt", directory / "server.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_file, key_file


def test_tls(start_server: Start, tmp_path: Path) -> None:
    cert_file, key_file = _self_signed(tmp_path)
    server = start_server(tls_cert_file=cert_file, tls_key_file=key_file, auth_tokens=["s3cret"])
    with server.client(tls_ca=cert_file, token="s3cret") as client:
        assert client.translate(["over tls"]).translations[0].hypotheses[0].text == "tls over"
    with server.client(token="s3cret") as plain, pytest.raises(grpc.RpcError) as error:
        plain.translate(["x"])
    assert error.value.code() == grpc.StatusCode.UNAVAILABLE
