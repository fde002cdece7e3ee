"""The served process with TLS (certificates from the tests' own CA) and bearer tokens: every method needs a
token, model names that are paths reach no file, and no message tells clients about the server's insides."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import json
import shutil
import signal
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from google.protobuf.descriptor import MethodDescriptor
from google.protobuf.message import Message
from grpc_reflection.v1alpha import reflection_pb2

from service.api.translation.v1 import translation_pb2 as pb
from service.api.translation.v1 import translation_pb2_grpc as pb_grpc
from tests.reliability.calls import Outcome, assert_serving, attempt, channel, code, collect, raw
from tests.reliability.tally import TALLY
from tests.support.service_process import ServiceProcess

TOKEN = "s3cret-token"
BEARER = (("authorization", f"Bearer {TOKEN}"),)
BAD_CREDENTIALS = [
    (),
    (("authorization", "Bearer wrong"),),
    (("authorization", "Bearer "),),
    (("authorization", f"bearer {TOKEN}"),),
    (("authorization", f"Basic {TOKEN}"),),
    (("authorization", TOKEN),),
    (("authorization", f"Bearer {TOKEN}"), ("authorization", "Bearer wrong")),
]
SERVICES: list[Any] = [  # descriptors: the two modules' stubs type them differently
    pb.DESCRIPTOR.services_by_name["Translator"],
    reflection_pb2.DESCRIPTOR.services_by_name["ServerReflection"],
]
REQUESTS: dict[str, Message] = {  # a valid request for each method that needs a token
    "Translate": pb.TranslateRequest(texts=["cat"]),
    "TranslateStream": pb.TranslateRequest(texts=["cat"]),
    "ListModels": pb.ListModelsRequest(),
    "ServerReflectionInfo": reflection_pb2.ServerReflectionRequest(list_services=""),
}


class Authority:
    """A certificate authority of the tests' own."""

    def __init__(self, name: str) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        self.cert = self._signed(self.name, self.key.public_key(), ca=True)

    @property
    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def issue(self, directory: Path) -> tuple[Path, Path]:
        """A certificate for localhost and 127.0.0.1, and its key, as PEM files in `directory`."""
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
        cert = self._signed(name, key.public_key(), ca=False)
        cert_file, key_file = directory / "server.crt", directory / "server.key"
        cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        pkcs8 = serialization.PrivateFormat.PKCS8
        key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, pkcs8, serialization.NoEncryption()))
        return cert_file, key_file

    def _signed(self, subject: x509.Name, public_key: ec.EllipticCurvePublicKey, ca: bool) -> x509.Certificate:
        now = datetime.datetime.now(datetime.timezone.utc)
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self.name)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if not ca:
            names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        return builder.sign(self.key, hashes.SHA256())


@dataclass(frozen=True)
class Secured:
    """The running server, its models root, a model directory beside it, and the CA its certificate is from."""

    service: ServiceProcess
    root: Path
    outside: Path
    authority: Authority

    @property
    def address(self) -> str:
        return self.service.address

    def credentials(self) -> grpc.ChannelCredentials:
        return grpc.ssl_channel_credentials(self.authority.pem)


@pytest.fixture(scope="module")
def secured(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Secured]:
    base = tmp_path_factory.mktemp("secured")
    root = base / "models"
    shutil.copytree(tiny_model_dir, root / "en-fr")
    outside = Path(shutil.copytree(tiny_model_dir, base / "de-en"))
    manifest = json.loads((outside / "manifest.json").read_text())
    (outside / "manifest.json").write_text(json.dumps({**manifest, "name": "de-en"}))
    authority = Authority("reliability tests CA")
    cert_file, key_file = authority.issue(base)
    credentials = grpc.ssl_channel_credentials(authority.pem)
    with ServiceProcess(
        root,
        base / "server.log",
        credentials=credentials,
        auth_tokens=f"{TOKEN},other",
        tls_cert_file=cert_file,
        tls_key_file=key_file,
    ) as service:
        service.wait_serving()
        yield Secured(service, root, outside, authority)
        service.signal(signal.SIGTERM)
        assert service.wait() == 0


def test_tls_with_the_tests_own_ca(secured: Secured) -> None:
    """Clients trusting the CA are served; plaintext clients and clients trusting another CA are not."""

    async def main() -> list[Outcome[pb.TranslateResponse]]:
        await assert_serving(secured.address, credentials=secured.credentials(), metadata=BEARER)
        outcomes = []
        for credentials in (None, grpc.ssl_channel_credentials(Authority("another CA").pem)):
            async with channel(secured.address, credentials) as connection:
                stub = pb_grpc.TranslatorStub(connection)
                outcomes.append(await attempt(stub.Translate(REQUESTS["Translate"], metadata=BEARER, timeout=10)))
        return outcomes

    assert [code(outcome) for outcome in asyncio.run(main())] == [grpc.StatusCode.UNAVAILABLE] * 2


async def _call(
    connection: grpc.aio.Channel, method: MethodDescriptor, metadata: Sequence[tuple[str, str]], send: bool = True
) -> Outcome[Any]:
    """Calls `method`, with its request from REQUESTS unless a stream is not to `send` it: grpc fails a client
    still writing to a call the server has ended with its own INTERNAL "Internal error from Core"."""
    path = f"/{method.containing_service.full_name}/{method.name}"
    data = REQUESTS[method.name].SerializeToString()
    if not method.client_streaming and not method.server_streaming:
        return await attempt(raw(connection, path)(data, metadata=metadata, timeout=10))
    assert method.client_streaming and method.server_streaming, "a method of a kind no test calls"
    stream: grpc.aio.StreamStreamMultiCallable[bytes, bytes] = connection.stream_stream(path)
    return await attempt(collect(stream(iter([data] if send else []), metadata=metadata, timeout=10)))


def test_every_method_needs_a_valid_token(secured: Secured) -> None:
    """Missing, wrong and malformed credentials are UNAUTHENTICATED on every method, streaming ones too."""
    methods = [method for service in SERVICES for method in service.methods]
    assert sorted(m.name for m in methods) == sorted(REQUESTS)

    async def main() -> None:
        async with channel(secured.address, secured.credentials()) as connection:
            for method in methods:
                for metadata in BAD_CREDENTIALS:
                    outcome = await _call(connection, method, metadata, send=False)
                    assert isinstance(outcome, grpc.aio.AioRpcError), (method.name, metadata)
                    assert outcome.code() == grpc.StatusCode.UNAUTHENTICATED, (method.name, metadata)
                    assert "authorization: Bearer <token>" in (outcome.details() or "")
                assert code(await _call(connection, method, BEARER)) == grpc.StatusCode.OK, method.name

    asyncio.run(main())
    TALLY.bad_inputs += len(methods) * len(BAD_CREDENTIALS)


def test_model_names_that_are_paths_reach_no_file(secured: Secured) -> None:
    """Names are looked up among the loaded models only: paths to a real model directory outside the models root,
    or to the loaded one, are unknown models."""
    names = [
        str(secured.outside),
        str(secured.outside / "manifest.json"),
        f"file://{secured.outside}",
        "../de-en",
        "en-fr/../../de-en",
        "de-en",
        str(secured.root / "en-fr"),
        "./en-fr",
        "en-fr/",
        "%2e%2e/de-en",
        "../../../../../../etc/passwd",
        "/etc",
    ]

    async def main() -> None:
        async with channel(secured.address, secured.credentials()) as connection:
            stub = pb_grpc.TranslatorStub(connection)
            for name in names:
                request = pb.TranslateRequest(texts=["cat"], model=name)
                outcome = await attempt(stub.Translate(request, metadata=BEARER), said=[name])
                assert isinstance(outcome, grpc.aio.AioRpcError) and outcome.code() == grpc.StatusCode.NOT_FOUND, name
                assert outcome.details() == f"unknown model {name!r}; available models: en-fr"
            listed = await attempt(stub.ListModels(pb.ListModelsRequest(), metadata=BEARER))
            assert isinstance(listed, pb.ListModelsResponse) and [m.name for m in listed.models] == ["en-fr"]

    asyncio.run(main())
    TALLY.bad_inputs += len(names)
