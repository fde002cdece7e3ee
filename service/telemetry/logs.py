"""Logging set-up: text or JSON lines, each carrying the id of the request being handled."""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import logging.handlers
import queue
import re
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from service.telemetry.native_logs import native_lines_logged, real_stderr

_request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
_VALID_REQUEST_ID = re.compile(r"[A-Za-z0-9._:/-]{1,128}")


def new_request_id(proposed: str | None = None) -> str:
    """The client's proposed id when it is a safe token, else a fresh random one."""
    if proposed and _VALID_REQUEST_ID.fullmatch(proposed):
        return proposed
    return uuid.uuid4().hex


@contextmanager
def request_context(request_id: str) -> Iterator[None]:
    """Tags the log records written inside the block with `request_id`."""
    token = _request_id.set(request_id)
    try:
        yield
    finally:
        _request_id.reset(token)


class _RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = _request_id.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, request_id, message, and the traceback if any."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": self.formatTime(record),
            "level": record.levelname,
            "logger": record.name,
            "request_id": getattr(record, "request_id", "-"),
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


@contextmanager
def logging_to_stderr(level: str = "INFO", json_lines: bool = False) -> Iterator[None]:
    """Sends every log record to stderr, as JSON lines or text, for the duration of the block.

    Records are formatted where they are logged (so they carry that request's id) and written by a
    background thread: a slow or blocked stderr (a container's log pipe) never stalls the event loop. With JSON
    lines, what native code writes to stderr itself (grpc's C core) becomes records too (native_logs).
    """
    records: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    formatting = logging.handlers.QueueHandler(records)
    formatting.addFilter(_RequestIdFilter())
    if json_lines:
        formatting.setFormatter(JsonFormatter())
    else:
        formatting.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"))
    output = real_stderr() if json_lines else sys.stderr
    writer = logging.handlers.QueueListener(records, logging.StreamHandler(output))
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    root.handlers[:] = [formatting]
    root.setLevel(level)
    writer.start()
    try:
        with native_lines_logged() if json_lines else contextlib.nullcontext():
            yield
    finally:
        writer.stop()  # writes what is queued, then ends the thread
        root.handlers[:], saved_level = saved
        root.setLevel(saved_level)
        if output is not sys.stderr:
            output.close()
