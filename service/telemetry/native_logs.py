"""Lines written straight to the process's stderr (file descriptor 2) by native code, grpc's C core above all,
turned into log records: with JSON logs, every line the process writes stays one JSON object. A line written
the moment the process dies (a fatal native error before abort) is lost with the thread that reads them."""

from __future__ import annotations

import logging
import os
import re
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO

# grpc's C core logs through absl: "E1126 13:29:03.152675   27042 ssl_transport_security.cc:2563] Handshake failed"
GRPC_LINE = re.compile(r"(?P<level>[IWEF])\d{4} [\d:.]+\s+\d+ (?P<where>[^\]\s]+)\] (?P<message>.*)")
LEVELS = {"I": logging.INFO, "W": logging.WARNING, "E": logging.ERROR, "F": logging.CRITICAL}
JOIN_TIMEOUT_S = 5.0


def real_stderr() -> TextIO:
    """Where sys.stderr writes, kept when `native_lines_logged` points file descriptor 2 elsewhere: a stream on a
    copy of the descriptor if it writes there, else sys.stderr itself (a stream in memory, as under pytest)."""
    try:
        descriptor = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):
        return sys.stderr
    if descriptor != 2:
        return sys.stderr
    return os.fdopen(os.dup(2), "w", buffering=1, encoding="utf-8", errors="replace")


@contextmanager
def native_lines_logged() -> Iterator[None]:
    """Points file descriptor 2 at a pipe whose lines a thread logs, for the duration of the block: grpc's with
    their level on logger "grpc", any other (a stray print to stderr) as a warning of logger "stderr"."""
    sys.stderr.flush()
    saved = os.dup(2)
    read_end, write_end = os.pipe()
    os.dup2(write_end, 2)
    os.close(write_end)
    reader = threading.Thread(target=_log_lines, args=(read_end,), name="native-stderr", daemon=True)
    reader.start()
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)  # closes the pipe's last write end: the reader logs what is left, then ends
        os.close(saved)
        reader.join(JOIN_TIMEOUT_S)


def _log_lines(read_end: int) -> None:
    with open(read_end, encoding="utf-8", errors="replace") as lines:
        for line in lines:
            log_line(line.rstrip("\n"))


def log_line(line: str) -> None:
    """Logs one line written to stderr outside logging."""
    if not line.strip():
        return
    grpc_line = GRPC_LINE.fullmatch(line)
    if grpc_line is None:
        logging.getLogger("stderr").warning("%s", line)
    else:
        level, where, message = grpc_line.group("level", "where", "message")
        logging.getLogger("grpc").log(LEVELS[level], "%s (%s)", message, where)
