"""The request id of a call: the client's `x-request-id` if it is a safe token, else a fresh one, sent back in the
call's trailing metadata whether the call succeeds or is refused."""

from __future__ import annotations

from typing import Any

import grpc

from service.rpc.accounting import handler_started
from service.telemetry.logs import new_request_id

REQUEST_ID_KEY = "x-request-id"
Context = grpc.aio.ServicerContext[Any, Any]


def begin(context: Context) -> str:
    """The call's request id, also set as its trailing metadata (kept if an earlier step of the call set one).

    Every handler calls it first: the call counts as started (see service.rpc.accounting).
    """
    handler_started()
    given = dict(context.trailing_metadata() or ()).get(REQUEST_ID_KEY)
    if given:
        return str(given)
    proposed = next((str(v) for k, v in context.invocation_metadata() or () if k == REQUEST_ID_KEY), None)
    request_id = new_request_id(proposed)
    context.set_trailing_metadata(((REQUEST_ID_KEY, request_id),))
    return request_id
