"""What a request may cost, checked before any of its work starts."""

from __future__ import annotations

from collections.abc import Sequence

import grpc
import numpy as np

from service.errors import ServiceError
from service.types import DecodeOptions

TOKEN_BYTES = 16  # a target token in a response: its share of the text, its id and its subword string
HYPOTHESIS_BYTES = 32  # a hypothesis' fixed fields and framing
ATTENTION_BYTES = 4  # one float of an attention matrix
WORK_LIMIT, RESPONSE_LIMIT = "max_request_work", "max_message_bytes"  # the settings a refusal names


class BudgetExceeded(ServiceError):
    """The request would cost more than a per-request limit allows; the message names the limit."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED

    def __init__(self, message: str, limit: str) -> None:
        super().__init__(message)
        self.limit = limit


def request_work(source_tokens: Sequence[int], options: DecodeOptions, max_lengths: np.ndarray) -> int:
    """Compute the request may take: source tokens x beams x maximum target length, summed over its texts."""
    return int(np.dot(np.asarray(source_tokens, dtype=np.int64), max_lengths)) * options.beam_size


def response_estimate(source_tokens: Sequence[int], options: DecodeOptions, max_lengths: np.ndarray) -> int:
    """Bytes of the expected response: each hypothesis as long as its source (within its maximum length)."""
    sources = np.asarray(source_tokens, dtype=np.int64)
    targets = np.minimum(sources, max_lengths)
    per_token = TOKEN_BYTES + (ATTENTION_BYTES * sources if options.return_attention else 0)
    hypotheses = options.n_best * (targets * per_token + HYPOTHESIS_BYTES)
    return int(np.sum(hypotheses + sources * TOKEN_BYTES))


def check_budget(
    source_tokens: Sequence[int],
    options: DecodeOptions,
    max_lengths: np.ndarray,
    max_work: int,
    max_response_bytes: int,
) -> None:
    """Raises BudgetExceeded when the request's work or expected response size is over its limit."""
    work = request_work(source_tokens, options, max_lengths)
    if work > max_work:
        raise BudgetExceeded(
            f"the request needs {work} token-steps (source tokens x beams x maximum length, over its texts);"
            f" max_request_work allows {max_work}: send fewer or shorter texts, a smaller beam_size or max_length",
            WORK_LIMIT,
        )
    size = response_estimate(source_tokens, options, max_lengths)
    if size > max_response_bytes:
        raise BudgetExceeded(
            f"the response would be about {size} bytes; max_message_bytes allows {max_response_bytes}:"
            " ask for fewer texts, fewer hypotheses or no attention",
            RESPONSE_LIMIT,
        )
