"""Log lines carry the request id; JSON lines when asked."""

from __future__ import annotations

import json
import logging

import pytest

from service.logs import configure_logging, new_request_id, request_context


def test_json_lines_with_request_id(capsys: pytest.CaptureFixture[str]) -> None:
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        configure_logging("INFO", json_lines=True)
        with request_context("req-7"):
            logging.getLogger("service.test").info("translated %d texts", 3)
        logging.getLogger("service.test").debug("not shown")
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)
    [line] = capsys.readouterr().err.splitlines()
    entry = json.loads(line)
    assert (entry["request_id"], entry["message"], entry["level"]) == ("req-7", "translated 3 texts", "INFO")


def test_request_ids() -> None:
    assert new_request_id("client-id_1.2:3/4") == "client-id_1.2:3/4"
    for bad in (None, "", "has space", "x" * 129, "naïve"):
        generated = new_request_id(bad)
        assert generated != bad and len(generated) == 32
