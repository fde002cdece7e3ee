"""Log lines carry the request id; JSON lines when asked."""

from __future__ import annotations

import json
import logging
import os

import pytest

from service.telemetry.logs import logging_to_stderr, new_request_id, request_context


def test_json_lines_with_request_id(capsys: pytest.CaptureFixture[str]) -> None:
    with logging_to_stderr("INFO", json_lines=True):
        with request_context("req-7"):
            logging.getLogger("service.test").info("translated %d texts", 3)
        logging.getLogger("service.test").debug("not shown")
        try:
            raise ValueError("bad")
        except ValueError:
            logging.getLogger("service.test").exception("failed")
    first, second = (json.loads(line) for line in capsys.readouterr().err.splitlines())
    assert (first["request_id"], first["message"], first["level"]) == ("req-7", "translated 3 texts", "INFO")
    assert (second["request_id"], second["message"]) == ("-", "failed")
    assert second["exception"].endswith("ValueError: bad")


def test_native_stderr_lines_become_json_records(capsys: pytest.CaptureFixture[str]) -> None:
    """Lines native code writes to file descriptor 2 (grpc's C core through absl, or anything else) come out as
    JSON records, grpc's with their level; the descriptor is restored afterwards."""
    before = os.fstat(2)
    with logging_to_stderr("INFO", json_lines=True):
        os.write(2, b"E1126 13:29:03.152675   27042 ssl_transport_security.cc:2563] Handshake failed\nstray\n")
    records = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert [(r["logger"], r["level"], r["message"]) for r in records] == [
        ("grpc", "ERROR", "Handshake failed (ssl_transport_security.cc:2563)"),
        ("stderr", "WARNING", "stray"),
    ]
    assert os.path.samestat(os.fstat(2), before)


def test_records_are_written_by_a_thread_and_flushed_at_the_end(capsys: pytest.CaptureFixture[str]) -> None:
    root = logging.getLogger()
    before = root.handlers[:]
    with logging_to_stderr("INFO"):
        for n in range(200):
            logging.getLogger("service.test").info("line %d", n)
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 200 and lines[-1].endswith("[-] line 199")
    assert root.handlers == before


def test_request_ids() -> None:
    assert new_request_id("client-id_1.2:3/4") == "client-id_1.2:3/4"
    for bad in (None, "", "has space", "x" * 129, "naïve"):
        generated = new_request_id(bad)
        assert generated != bad and len(generated) == 32
