"""Language identification, routing by language pair, and warnings or refusals for text in another language."""

from __future__ import annotations

from collections.abc import Callable

import grpc
import pytest

from service.text.language import DETECTOR
from tests.service.fakes import ReversingBackend
from tests.service.harness import ServerThread

Start = Callable[..., ServerThread]
GERMAN = "Ein Mann mit einem roten Hut fährt mit dem Fahrrad durch die Stadt."
ENGLISH = "A man in a red hat rides his bicycle through the busy city streets."


def models() -> dict[str, ReversingBackend]:
    return {"en-fr": ReversingBackend("en-fr"), "en-de": ReversingBackend("en-de", "de")}


def test_detection_of_clear_sentences_and_of_text_without_letters() -> None:
    assert DETECTOR.detect(GERMAN).language == "de"
    assert DETECTOR.detect(ENGLISH).language == "en"
    assert DETECTOR.detect("12 345 !?").language == ""
    assert DETECTOR.detect("").confidence == 0.0


def test_each_text_reports_its_language(start_server: Start) -> None:
    server = start_server()
    with server.client() as client:
        response = client.translate([ENGLISH, GERMAN, "42"])
    detected = [t.detected_language for t in response.translations]
    assert [d.language for d in detected] == ["en", "de", ""]
    assert all(0 <= d.confidence <= 1 for d in detected) and detected[1].confidence > 0.8


def test_text_in_another_language_gets_a_warning_and_is_still_translated(start_server: Start) -> None:
    server = start_server()
    with server.client() as client:
        response = client.translate([ENGLISH, GERMAN])
    english, german = response.translations
    assert not english.warnings
    [warning] = german.warnings
    assert warning.kind == "LANGUAGE_MISMATCH"
    assert warning.message.startswith("texts[1] seems to be in 'de' (confidence ")
    assert "not in 'en', the source language of model en-fr; translated anyway" in warning.message
    assert german.hypotheses[0].text


def test_strict_checking_refuses_text_in_another_language(start_server: Start) -> None:
    server = start_server()
    with server.client() as client:
        assert client.translate([ENGLISH], strict_language=True).translations[0].hypotheses[0].text
        with pytest.raises(grpc.RpcError) as error:
            client.translate([ENGLISH, GERMAN], strict_language=True)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.value.details().startswith("texts[1] seems to be in 'de'")
    assert "strict_language refuses it" in error.value.details()


@pytest.mark.parametrize(("source", "target", "model"), [("en", "fr", "en-fr"), ("en", "de", "en-de")])
def test_a_language_pair_routes_to_its_model(start_server: Start, source: str, target: str, model: str) -> None:
    server = start_server(models())
    with server.client() as client:
        response = client.translate(["a b"], source_language=source, target_language=target)
        assert response.model == model
        assert client.translate(["a b"], model=model, source_language=source, target_language=target).model == model


@pytest.mark.parametrize(
    ("fields", "code", "message"),
    [
        (
            {"source_language": "en", "target_language": "es"},
            grpc.StatusCode.NOT_FOUND,
            "no model translates 'en' to 'es'; served pairs: en->fr (model en-fr), en->de (model en-de)",
        ),
        (
            {"source_language": "en"},
            grpc.StatusCode.INVALID_ARGUMENT,
            "source_language and target_language go together: give both or neither",
        ),
        (
            {"model": "en-fr", "source_language": "en", "target_language": "de"},
            grpc.StatusCode.INVALID_ARGUMENT,
            "model en-fr translates en to fr, not as source_language and target_language ask (model en-de does)",
        ),
        (
            {"source_language": "x" * 500, "target_language": "fr"},
            grpc.StatusCode.NOT_FOUND,
            f"no model translates '{'x' * 128}…' to 'fr'",
        ),
    ],
)
def test_language_pairs_the_server_cannot_serve(
    start_server: Start, fields: dict[str, str], code: grpc.StatusCode, message: str
) -> None:
    server = start_server(models())
    with server.client() as client, pytest.raises(grpc.RpcError) as error:
        client.translate(["a b"], **fields)  # type: ignore[arg-type]
    assert error.value.code() == code
    assert error.value.details().startswith(message)
