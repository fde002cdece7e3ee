"""A small JSON-over-HTTP client for the tests of the HTTP API (urllib: no client library to mock anything)."""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any


@dataclass
class Reply:
    """An HTTP response: status, headers (lower-case names) and the body, parsed when it is JSON."""

    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def error(self) -> dict[str, Any]:
        """The `error` object of a JSON error body."""
        error: dict[str, Any] = self.json["error"]
        return error


def request(
    url: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    method: str | None = None,
    context: ssl.SSLContext | None = None,
    timeout: float = 20,
) -> Reply:
    """Sends one request; an HTTP error status is a Reply too, not an exception."""
    call = urllib.request.Request(url, data=body, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(call, timeout=timeout, context=context) as response:
            return Reply(response.status, {k.lower(): v for k, v in response.headers.items()}, response.read())
    except urllib.error.HTTPError as error:
        return Reply(error.code, {k.lower(): v for k, v in error.headers.items()}, error.read())


def post_json(url: str, document: Any, headers: dict[str, str] | None = None, **kwargs: Any) -> Reply:
    """POSTs `document` as JSON."""
    body = json.dumps(document).encode()
    return request(url, body, {"content-type": "application/json", **(headers or {})}, **kwargs)
