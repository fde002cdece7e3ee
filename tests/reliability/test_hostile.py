"""A hostile client against the served process: streams that never read, oversized ids, a malformed message in a
stream, and the request id on every refusal."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from service.api.translation.v1 import translation_pb2 as pb
from service.api.translation.v1 import translation_pb2_grpc as pb_grpc
from tests.reliability.calls import TEXTS, assert_serving, attempt, channel, code
from tests.support.service_process import ServiceProcess

TOKEN = "hostile-tests-token"
BEARER = (("authorization", f"Bearer {TOKEN}"),)
STREAM = "/translation.v1.Translator/TranslateStream"
TRANSLATE = "/translation.v1.Translator/Translate"
MAX_STREAM_INFLIGHT = 16
MALFORMED = b"\xff\xff\xff"
CODES = ("OK", "CANCELLED", "DEADLINE_EXCEEDED")
STARTED = "mt_grpc_calls_started_total"  # grpc's count of the calls that reached the server


@pytest.fixture(scope="module")
def service(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    log = tmp_path_factory.mktemp("hostile") / "server.log"
    with ServiceProcess(
        tiny_model_dir.parent, log, auth_tokens=TOKEN, max_stream_inflight=MAX_STREAM_INFLIGHT
    ) as running:
        running.wait_serving()
        yield running


def stream_requests(service: ServiceProcess) -> float:
    """TranslateStream requests the server has answered so far."""
    return service.sample_sum("mt_requests_total", method="TranslateStream")


def test_a_stream_that_never_reads_is_not_read_without_bound(service: ServiceProcess) -> None:
    """A client writing requests and reading no answer stalls once the stream's requests in flight are answered
    and the answers fill the client's receive window (fixed: no bandwidth probing): the server stops reading
    instead of growing."""
    before = stream_requests(service)
    request = pb.TranslateRequest(texts=[" " * 1000], id="x" * 200).SerializeToString()
    sent = 20_000

    async def main() -> int:
        async with channel(service.address, options=[("grpc.http2.bdp_probe", 0)]) as connection:
            call = connection.stream_stream(STREAM)(metadata=BEARER)
            for n in range(sent):
                try:
                    await asyncio.wait_for(call.write(request), 3)
                except TimeoutError:
                    call.cancel()
                    return n
            call.cancel()
            return sent

    written = asyncio.run(main())
    answered = stream_requests(service) - before
    assert written < sent, f"all {sent} requests were read ahead ({answered} answered)"
    assert answered < 1000  # in flight, plus the answers the client's 64 KiB receive window holds
    asyncio.run(assert_serving(service.address, metadata=BEARER))


@pytest.mark.parametrize("size", [257, 1_000_000])
def test_an_id_over_256_bytes_is_refused(service: ServiceProcess, size: int) -> None:
    """INVALID_ARGUMENT saying the limit, alone and in a stream (where the response carries no id)."""

    async def main() -> tuple[object, list[pb.TranslateResponse]]:
        request = pb.TranslateRequest(texts=[TEXTS[0]], id="é" * (size // 2) + "x" * (size % 2))
        async with channel(service.address) as connection:
            stub = pb_grpc.TranslatorStub(connection)
            alone = await attempt(stub.Translate(request, metadata=BEARER))
            streamed = [r async for r in stub.TranslateStream(iter([request]), metadata=BEARER)]
        return alone, streamed

    alone, streamed = asyncio.run(main())
    assert isinstance(alone, grpc.aio.AioRpcError) and alone.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert f"id has {size} bytes; at most 256 are allowed" in (alone.details() or "")
    [response] = streamed
    assert response.status.code == grpc.StatusCode.INVALID_ARGUMENT.value[0] and not response.id
    assert f"id has {size} bytes" in response.status.message


def test_a_malformed_message_ends_the_stream_after_its_accepted_requests(service: ServiceProcess) -> None:
    """The requests read before the malformed message are answered, then the stream ends INVALID_ARGUMENT with
    the call's request id in its trailer."""
    good = [pb.TranslateRequest(texts=[text], id=f"r{n}").SerializeToString() for n, text in enumerate(TEXTS[:5])]

    async def main() -> tuple[list[pb.TranslateResponse], grpc.aio.AioRpcError]:
        async with channel(service.address) as connection:
            metadata = (*BEARER, ("x-request-id", "stream-1"))
            call = connection.stream_stream(STREAM)(iter([*good, MALFORMED]), metadata=metadata)
            answered = []
            try:
                async for data in call:
                    answered.append(pb.TranslateResponse.FromString(data))
            except grpc.aio.AioRpcError as error:
                return answered, error
            raise AssertionError("the stream ended OK")

    for _ in range(3):
        answered, error = asyncio.run(main())
        assert sorted(r.id for r in answered) == [f"r{n}" for n in range(5)]
        assert all(r.status.code == 0 and len(r.translations) == 1 for r in answered)
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert ("x-request-id", "stream-1") in list(error.trailing_metadata() or ())


@pytest.mark.parametrize(
    ("method", "data", "metadata", "status"),
    [
        (TRANSLATE, MALFORMED, BEARER, grpc.StatusCode.INVALID_ARGUMENT),
        (STREAM, MALFORMED, BEARER, grpc.StatusCode.INVALID_ARGUMENT),
        (TRANSLATE, pb.TranslateRequest(texts=["cat"]).SerializeToString(), (), grpc.StatusCode.UNAUTHENTICATED),
        (STREAM, b"", (), grpc.StatusCode.UNAUTHENTICATED),
    ],
)
def test_refusals_carry_the_request_id(
    service: ServiceProcess, method: str, data: bytes, metadata: tuple[tuple[str, str], ...], status: grpc.StatusCode
) -> None:
    """The client's x-request-id comes back in the trailer of a refused call; without one, a fresh id does."""

    async def call(extra: tuple[tuple[str, str], ...]) -> grpc.aio.AioRpcError:
        async with channel(service.address) as connection:
            everything = (*metadata, *extra)
            try:
                if method == STREAM:
                    messages = [data] if data else []
                    [_ async for _ in connection.stream_stream(method)(iter(messages), metadata=everything)]
                else:
                    await connection.unary_unary(method)(data, metadata=everything)
            except grpc.aio.AioRpcError as error:
                return error
            raise AssertionError("the call succeeded")

    proposed = asyncio.run(call((("x-request-id", "mine-42"),)))
    assert proposed.code() == status
    assert ("x-request-id", "mine-42") in list(proposed.trailing_metadata() or ())
    fresh = asyncio.run(call(()))
    assert fresh.code() == status
    assert [len(v) for k, v in fresh.trailing_metadata() or () if k == "x-request-id"] == [32]


@pytest.mark.parametrize("port", ["grpc_port", "metrics_port"])
def test_a_busy_port_stops_the_start(service: ServiceProcess, tiny_model_dir: Path, tmp_path: Path, port: str) -> None:
    """A second server on a port the first holds exits 2 with one `error:` line; the first keeps all its calls."""
    taken = getattr(service, port)
    with ServiceProcess(tiny_model_dir.parent, tmp_path / "second.log", **{port: taken}) as second:
        status = second.wait()
    output = second.output()
    assert status == 2, output
    assert f"error: {port} {taken}: the address 127.0.0.1:{taken} is in use" in output
    assert "Traceback" not in output
    asyncio.run(assert_serving(service.address, metadata=BEARER))


def _threads_and_descriptors(pid: int) -> tuple[int, int]:
    status = Path(f"/proc/{pid}/status").read_text()
    threads = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("Threads:"))
    return threads, len(list(Path(f"/proc/{pid}/fd").iterdir()))


def _at_most(counts: tuple[int, int], limits: tuple[int, int]) -> bool:
    return all(n <= limit for n, limit in zip(counts, limits, strict=True))


def test_half_sent_metrics_requests_are_dropped(tiny_model_dir: Path, tmp_path: Path) -> None:
    """Connections that never finish their request hold at most `metrics_max_connections` threads, for at most
    `metrics_read_timeout_s`; then threads and descriptors are back where they were and /metrics answers."""
    with ServiceProcess(
        tiny_model_dir.parent, tmp_path / "server.log", metrics_read_timeout_s=1, metrics_max_connections=4
    ) as service:
        service.wait_serving()
        service.metrics_text()
        pid = service.process.pid
        before = _threads_and_descriptors(pid)
        with contextlib.ExitStack() as stack:
            for _ in range(40):
                connection = stack.enter_context(socket.create_connection(("127.0.0.1", service.metrics_port)))
                connection.sendall(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            time.sleep(0.5)
            held = _threads_and_descriptors(pid)
            assert held[0] <= before[0] + 4, (before, held)
            deadline = time.monotonic() + 10
            while not _at_most(_threads_and_descriptors(pid), before) and time.monotonic() < deadline:
                time.sleep(0.2)
            assert _at_most(_threads_and_descriptors(pid), before), (before, _threads_and_descriptors(pid))
            assert "mt_requests_total" in service.metrics_text()


def _translate_counts(service: ServiceProcess) -> dict[str, float]:
    """The server's count of Translate calls by code, once it has settled (the server may end calls a moment after
    the clients)."""
    totals: list[float] = []
    while len(totals) < 3 or totals[-1] != totals[-3]:
        time.sleep(0.5)
        totals.append(service.sample_sum("mt_requests_total", method="Translate"))
    return {code: service.sample_sum("mt_requests_total", method="Translate", code=code) for code in CODES}


def test_every_expired_deadline_is_counted_as_such(service: ServiceProcess) -> None:
    """200 concurrent calls with 0.3 s deadlines: those whose deadline passes are counted DEADLINE_EXCEEDED, not
    CANCELLED, and every call that reached the server is counted (those beyond a connection's streams wait at
    the client, where some expire)."""
    before, first = _translate_counts(service), service.sample_sum(STARTED)
    request = pb.TranslateRequest(texts=TEXTS[:4], beam_size=4)

    async def main() -> list[grpc.StatusCode | None]:
        async with channel(service.address) as connection:
            stub = pb_grpc.TranslatorStub(connection)
            calls = [attempt(stub.Translate(request, metadata=BEARER, timeout=0.3)) for _ in range(200)]
            return [code(outcome) for outcome in await asyncio.gather(*calls)]

    statuses = asyncio.run(main())
    seen = collections.Counter(status.name if status else "lost" for status in statuses)
    after = _translate_counts(service)
    counted, reached = {code: after[code] - before[code] for code in CODES}, service.sample_sum(STARTED) - first
    assert seen["DEADLINE_EXCEEDED"] > 0, seen
    assert counted["CANCELLED"] == 0, (seen, counted)
    # A call answered at its deadline may be OK on the server and DEADLINE_EXCEEDED at the client, not otherwise.
    assert counted["OK"] >= seen["OK"], (seen, counted)
    assert counted["DEADLINE_EXCEEDED"] + counted["OK"] == reached, (seen, counted, reached)


def test_short_deadlines_on_a_busy_server_are_all_counted(service: ServiceProcess) -> None:
    """50 ms deadlines while a stream of long requests keeps the model busy: every call that reached the server is
    counted once, its expiry DEADLINE_EXCEEDED (most expire before their handler starts). Clients see more
    DEADLINE_EXCEEDED only for calls whose deadline passed before they left the client, and for calls answered
    at their deadline (OK on the server)."""
    before = _translate_counts(service)
    heavy = pb.TranslateRequest(texts=TEXTS[:16], beam_size=4)
    request = pb.TranslateRequest(texts=TEXTS[:4], beam_size=4)
    waves, per_wave = 3, 80  # fewer than a connection's streams: no call waits at the client for a free one

    async def busy() -> None:
        while not service.sample_sum("mt_inflight_requests", method="TranslateStream"):
            await asyncio.sleep(0.05)

    async def main() -> tuple[list[grpc.StatusCode | None], int]:
        async with channel(service.address) as loaded, channel(service.address) as connection:
            load = pb_grpc.TranslatorStub(loaded).TranslateStream(iter([heavy] * 8), metadata=BEARER)
            await asyncio.wait_for(busy(), 30)
            await connection.channel_ready()
            stub = pb_grpc.TranslatorStub(connection)
            first = service.sample_sum(STARTED)
            outcomes = []
            for _ in range(waves):
                calls = [attempt(stub.Translate(request, metadata=BEARER, timeout=0.05)) for _ in range(per_wave)]
                outcomes += await asyncio.gather(*calls)
            reached = service.sample_sum(STARTED) - first
            load.cancel()
        return [code(outcome) for outcome in outcomes], reached

    statuses, reached = asyncio.run(main())
    seen = collections.Counter(status.name if status else "lost" for status in statuses)
    after = _translate_counts(service)
    counted = {code: after[code] - before[code] for code in CODES}
    never_reached, answered_late = waves * per_wave - reached, counted["OK"] - seen["OK"]
    assert seen["DEADLINE_EXCEEDED"] > 0 and reached > 0, (seen, reached)
    assert counted["CANCELLED"] == 0, (seen, counted)
    assert counted["DEADLINE_EXCEEDED"] + counted["OK"] == reached, (seen, counted, reached)
    assert answered_late >= 0, (seen, counted)
    assert seen["DEADLINE_EXCEEDED"] - counted["DEADLINE_EXCEEDED"] == never_reached + answered_late, (seen, counted)


def test_a_client_cancelling_streams_logs_no_error(service: ServiceProcess) -> None:
    """Streams cancelled with requests in flight, or while the server waits to read, end without an ERROR line or a
    traceback in the server's log."""
    logged = len(service.output())
    request = pb.TranslateRequest(texts=TEXTS[:8], beam_size=4)

    async def main() -> None:
        async with channel(service.address) as connection:
            stub = pb_grpc.TranslatorStub(connection)
            for n in range(10):
                call = stub.TranslateStream(metadata=BEARER)
                for _ in range(n % 3):
                    await call.write(request)
                await asyncio.sleep(0.05 * (n % 4))
                call.cancel()
            await assert_serving(service.address, metadata=BEARER)

    asyncio.run(main())
    time.sleep(0.5)
    new = service.output()[logged:]
    assert " ERROR " not in new and "Traceback" not in new, new


def test_json_logs_stay_json_when_grpc_itself_complains(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With MT_LOG_JSON, a plain TCP client sending garbage to the TLS port leaves only JSON lines in the log:
    grpc's own lines about the failed handshakes (logged at INFO: its verbosity raised for the test) among them."""
    monkeypatch.setenv("GRPC_VERBOSITY", "INFO")
    from tests.reliability.test_security import Authority  # the tests' own CA

    authority = Authority("json logs CA")
    cert_file, key_file = authority.issue(tmp_path)
    credentials = grpc.ssl_channel_credentials(authority.pem)
    with ServiceProcess(
        tiny_model_dir.parent,
        tmp_path / "server.log",
        credentials=credentials,
        tls_cert_file=cert_file,
        tls_key_file=key_file,
        log_json="true",
    ) as service:
        service.wait_serving()
        for garbage in (b"GET / HTTP/1.1\r\n\r\n", b"\x16\x03\x01\x00\x05hello", b"\x00" * 64):
            with socket.create_connection(("127.0.0.1", service.grpc_port)) as connection:
                connection.sendall(garbage)
                connection.settimeout(2)
                with contextlib.suppress(OSError):
                    connection.recv(1024)
        time.sleep(0.5)
        service.signal(signal.SIGTERM)
        assert service.wait() == 0
    records = [json.loads(line) for line in service.output().splitlines()]
    assert all(isinstance(record, dict) for record in records), records
    handshakes = [r for r in records if r["logger"] == "grpc" and "Handshake failed" in r["message"]]
    assert len(handshakes) == 3, records
