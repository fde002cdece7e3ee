"""A Python client of the Translator service, and its command line (`python -m service.client`)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Iterator, Sequence
from itertools import islice
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

import grpc
from google.protobuf.json_format import MessageToDict

from service.api.translation.v1 import translation_pb2 as pb
from service.api.translation.v1 import translation_pb2_grpc as pb_grpc

DEFAULT_ADDRESS = "localhost:50051"
SERVICE_NAME = pb.DESCRIPTOR.services_by_name["Translator"].full_name
MAX_RETRIES = 4  # gRPC makes at most 5 attempts of a call
# Every method is idempotent, so retrying is safe. A server that shuts down refuses new calls with UNAVAILABLE,
# but gRPC core ends calls it received and had not yet handed to the service with CANCELLED
# (https://github.com/grpc/grpc/issues/41785).
RETRYABLE = ("UNAVAILABLE", "CANCELLED")
LoadBalancing = Literal["pick_first", "round_robin"]
TextFormat = str | int  # "plain", "html", or a TextFormat number


class TranslatorClient:
    """A blocking client; `token` is sent as `authorization: Bearer`, `tls_ca` (PEM file) turns on TLS.

    `address` may name several servers ("ipv4:10.0.0.1:50051,10.0.0.2:50051", or a DNS name with several
    addresses): `load_balancing="round_robin"` spreads the calls over all of them, where gRPC's default
    (pick_first) sends every call to one. `retries` is how many times a call refused by a server shutting
    down or gone is tried again (see `RETRYABLE`); with round_robin the next try goes to the next server.
    """

    def __init__(
        self,
        address: str = DEFAULT_ADDRESS,
        token: str | None = None,
        tls_ca: str | Path | None = None,
        *,
        timeout: float | None = 60.0,
        max_message_bytes: int = 4 * 1024 * 1024,
        load_balancing: LoadBalancing | None = None,
        retries: int = 0,
    ) -> None:
        options: list[tuple[str, Any]] = [
            ("grpc.max_send_message_length", max_message_bytes),
            ("grpc.max_receive_message_length", max_message_bytes),
        ]
        config = service_config(load_balancing, retries)
        if config is not None:
            options.append(("grpc.service_config", config))
        if tls_ca is not None:
            credentials = grpc.ssl_channel_credentials(root_certificates=Path(tls_ca).read_bytes())
            self._channel = grpc.secure_channel(address, credentials, options=options)
        else:
            self._channel = grpc.insecure_channel(address, options=options)
        self._stub = pb_grpc.TranslatorStub(self._channel)
        self._metadata = (("authorization", f"Bearer {token}"),) if token else ()
        self._timeout = timeout

    def translate(
        self,
        texts: Sequence[str],
        *,
        model: str = "",
        beam_size: int = 0,
        n_best: int = 0,
        max_length: int = 0,
        length_penalty: float = 0.0,
        return_scores: bool = False,
        return_attention: bool = False,
        no_repeat_ngram_size: int | None = None,
        source_language: str = "",
        target_language: str = "",
        strict_language: bool = False,
        format: TextFormat = "plain",
        request_id: str | None = None,
    ) -> pb.TranslateResponse:
        """Translates `texts` in one request (0 = the server's default for each option; None for
        `no_repeat_ngram_size`). Each text may be a whole document: the response has its segments.

        `format` is "plain" or "html" (or a TextFormat number): with "html", each text is an HTML fragment or
        document and each translation is HTML.
        """
        request = translate_request(
            texts,
            format=text_format(format),
            model=model,
            beam_size=beam_size,
            n_best=n_best,
            max_length=max_length,
            length_penalty=length_penalty,
            return_scores=return_scores,
            return_attention=return_attention,
            no_repeat_ngram_size=no_repeat_ngram_size,
            source_language=source_language,
            target_language=target_language,
            strict_language=strict_language,
        )
        metadata = self._metadata + ((("x-request-id", request_id),) if request_id else ())
        response: pb.TranslateResponse = self._stub.Translate(request, self._timeout, metadata)
        return response

    def translate_stream(self, requests: Iterable[pb.TranslateRequest]) -> Iterator[pb.TranslateResponse]:
        """Sends many requests over one call; responses come as they finish, matched by `id`."""
        responses: Iterator[pb.TranslateResponse] = self._stub.TranslateStream(
            iter(requests), timeout=self._timeout, metadata=self._metadata
        )
        return responses

    def list_models(self) -> list[pb.ModelInfo]:
        """The models the server holds, the default first."""
        response: pb.ListModelsResponse = self._stub.ListModels(
            pb.ListModelsRequest(), timeout=self._timeout, metadata=self._metadata
        )
        return list(response.models)

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> TranslatorClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def translate_request(texts: Sequence[str], **fields: Any) -> pb.TranslateRequest:
    """A TranslateRequest of `texts` and the other `fields`.

    Raises ValueError for a string that is not valid Unicode (a lone surrogate, as a file name or argument
    with undecodable bytes gives): protobuf strings are UTF-8 and cannot carry it.
    """
    named = [*((f"texts[{i}]", text) for i, text in enumerate(texts)), *fields.items()]
    for name, value in named:
        if isinstance(value, str):
            try:
                value.encode()
            except UnicodeEncodeError as exc:
                raise ValueError(
                    f"{name} is not valid Unicode: {exc.reason} ({value[exc.start]!r} at position {exc.start})"
                ) from None
    return pb.TranslateRequest(texts=texts, **{name: value for name, value in fields.items() if value is not None})


def text_format(format: TextFormat) -> int:
    """The TextFormat number of "plain", "html" (any case) or a number (passed on as it is)."""
    if isinstance(format, int):
        return format
    name, names = f"TEXT_FORMAT_{format.upper()}", pb.TextFormat.keys()
    if name not in names:
        allowed = ", ".join(repr(n.removeprefix("TEXT_FORMAT_").lower()) for n in names)
        raise ValueError(f"format is {format!r}; it must be one of {allowed}")
    return pb.TextFormat.Value(name)


def service_config(load_balancing: LoadBalancing | None = None, retries: int = 0) -> str | None:
    """The gRPC service config (JSON) of a channel: its load-balancing policy, and retries of refused calls."""
    if not 0 <= retries <= MAX_RETRIES:
        raise ValueError(f"retries must be between 0 and {MAX_RETRIES}, not {retries}")
    config: dict[str, Any] = {}
    if load_balancing is not None:
        config["loadBalancingConfig"] = [{load_balancing: {}}]
    if retries:
        policy = {
            "maxAttempts": retries + 1,
            "initialBackoff": "0.1s",
            "maxBackoff": "1s",
            "backoffMultiplier": 2,
            "retryableStatusCodes": list(RETRYABLE),
        }
        config["methodConfig"] = [{"name": [{"service": SERVICE_NAME}], "retryPolicy": policy}]
    return json.dumps(config) if config else None


def plot_attention(attention: pb.Attention, path: str | Path) -> None:
    """Draws an attention matrix as a heatmap: source subwords across, target subwords down."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    weights = np.asarray(attention.weights, dtype=np.float32).reshape(attention.rows, attention.cols)
    fig, ax = plt.subplots(figsize=(1 + 0.5 * attention.cols, 1 + 0.5 * attention.rows))
    image = ax.imshow(weights, cmap="viridis", aspect="auto", vmin=0.0)
    ax.set_xticks(range(attention.cols), list(attention.source_tokens), rotation=90)
    ax.set_yticks(range(attention.rows), list(attention.target_tokens))
    ax.set_xlabel("source subwords")
    ax.set_ylabel("target subwords")
    fig.colorbar(image, ax=ax, label="attention weight")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _batches(lines: Iterable[str], size: int) -> Iterator[list[str]]:
    it = iter(lines)
    while batch := list(islice(it, size)):
        yield batch


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m service.client",
        description="Translate the TEXT arguments, or the lines of stdin (with --html: all of stdin, as one text),"
        " or a whole document (--document).",
    )
    parser.add_argument("texts", nargs="*", metavar="TEXT")
    parser.add_argument("--address", default=DEFAULT_ADDRESS, help="host:port of the server")
    parser.add_argument("--token", help="bearer token, if the server asks for one")
    parser.add_argument("--tls-ca", type=Path, help="PEM file of the CA that signed the server's certificate")
    parser.add_argument("--model", default="", help="model name (default: the server's default model)")
    parser.add_argument("--beam-size", type=int, default=0)
    parser.add_argument("--n-best", type=int, default=0)
    parser.add_argument("--max-length", type=int, default=0)
    parser.add_argument("--length-penalty", type=float, default=0.0)
    parser.add_argument("--batch-size", type=int, default=32, help="texts per request")
    parser.add_argument("--scores", action="store_true", help="ask for hypothesis scores")
    parser.add_argument("--json", action="store_true", help="one JSON object per text instead of plain text")
    parser.add_argument("--attention", type=Path, metavar="FILE.png", help="draw the first text's attention")
    parser.add_argument("--list-models", action="store_true", help="list the served models and exit")
    parser.add_argument(
        "--html", action="store_true", help="the texts are HTML (stdin: the whole input is one HTML text)"
    )
    parser.add_argument(
        "--document",
        metavar="FILE",
        help="translate FILE ('-': stdin) as one document: its paragraphs, lines and list markers kept",
    )
    parser.add_argument("--no-repeat-ngram-size", type=int, help="n-gram size of the repeat guard (0: off)")
    parser.add_argument("--source-language", default="", help="with --target-language: the pair, instead of --model")
    parser.add_argument("--target-language", default="")
    parser.add_argument(
        "--strict-language", action="store_true", help="refuse text that seems to be in another language"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the command line; prints translations to stdout, errors to stderr (exit status 1)."""
    args = _parser().parse_args(argv)
    lines = args.texts or ([sys.stdin.read()] if args.html else (line.rstrip("\n") for line in sys.stdin))
    try:
        with TranslatorClient(args.address, args.token, args.tls_ca) as client:
            if args.list_models:
                for info in client.list_models():
                    print(json.dumps(MessageToDict(info, preserving_proto_field_name=True)))
                return 0
            if args.document is not None:
                document = _read_document(args.document)
                response = client.translate([document], **_options(args, args.attention is not None))
                _print_document(document, response, args)
                return 0
            for i, batch in enumerate(_batches(lines, args.batch_size)):
                want_attention = args.attention is not None and i == 0
                response = client.translate(batch, **_options(args, want_attention))
                if want_attention:
                    plot_attention(response.translations[0].hypotheses[0].attention, args.attention)
                _print(batch, response, args.json)
    except grpc.RpcError as exc:
        print(f"error: {exc.code().name}: {exc.details()}", file=sys.stderr)
        return 1
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


def _options(args: argparse.Namespace, return_attention: bool) -> dict[str, Any]:
    """The request options the command line asks for."""
    return {
        "model": args.model,
        "beam_size": args.beam_size,
        "n_best": args.n_best,
        "max_length": args.max_length,
        "length_penalty": args.length_penalty,
        "return_scores": args.scores,
        "return_attention": return_attention,
        "no_repeat_ngram_size": args.no_repeat_ngram_size,
        "source_language": args.source_language,
        "target_language": args.target_language,
        "strict_language": args.strict_language,
        "format": "html" if args.html else "plain",
    }


def _read_document(name: str) -> str:
    """The whole of a file, or of stdin for "-"."""
    return sys.stdin.read() if name == "-" else Path(name).read_text(encoding="utf-8")


def _print_document(document: str, response: pb.TranslateResponse, args: argparse.Namespace) -> None:
    """The translated document as it is (or as JSON with its segments); warnings on stderr."""
    translation = response.translations[0]
    for warning in translation.warnings:
        print(f"warning: {warning.message}", file=sys.stderr)
    if args.attention is not None and translation.segments:
        plot_attention(translation.segments[0].hypotheses[0].attention, args.attention)
    if args.json:
        entry = MessageToDict(translation, preserving_proto_field_name=True)
        print(json.dumps({"source": document, **entry}, ensure_ascii=False))
    else:
        sys.stdout.write(translation.hypotheses[0].text)


def _print(texts: list[str], response: pb.TranslateResponse, as_json: bool) -> None:
    for text, translation in zip(texts, response.translations, strict=True):
        if as_json:
            entry = MessageToDict(translation, preserving_proto_field_name=True)
            print(json.dumps({"source": text, **entry}, ensure_ascii=False))
        elif len(translation.hypotheses) == 1:
            text = translation.hypotheses[0].text  # an HTML text read whole may end with its own newline
            print(text, end="" if text.endswith("\n") else "\n")
        else:  # n-best: one hypothesis per line, a blank line after each text
            print("\n".join(h.text for h in translation.hypotheses), end="\n\n")


if __name__ == "__main__":
    sys.exit(main())
