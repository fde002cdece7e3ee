"""The HTTP API and the page of the service process with real models: the engine's answers, over HTTP."""

from __future__ import annotations

import re

import numpy as np
import pytest

from service.decoding.engine import Engine
from service.http.app import STATIC
from tests.integration.calls import FP32_MODEL, MODEL, served_options
from tests.support.http import post_json, request
from tests.support.service_process import ServiceProcess
from tests.support.tiny import source_sentences

TEXTS = [*source_sentences(4, seed=5), "A man rides a bike."]


@pytest.mark.parametrize("model", [MODEL, FP32_MODEL])
def test_translations_are_the_engines(service: ServiceProcess, engines: dict[str, Engine], model: str) -> None:
    asked = {"texts": TEXTS, "model": model, "beam_size": 3, "n_best": 2, "return_scores": True}
    reply = post_json(f"{service.http_url}/v1/translate", {**asked, "return_attention": True})
    assert reply.status == 200, reply.body
    options = served_options(beam_size=3, n_best=2, return_attention=True)
    expected = engines[model].translate(TEXTS, options)
    for got, want in zip(reply.json["translations"], expected, strict=True):
        assert got["source_tokens"] == want.source_tokens
        for hypothesis, reference in zip(got["hypotheses"], want.hypotheses, strict=True):
            assert (hypothesis["text"], hypothesis["tokens"]) == (reference.text, reference.tokens)
            assert hypothesis["score"] == pytest.approx(reference.score, abs=1e-5)
            attention = hypothesis["attention"]
            weights = np.asarray(attention["weights"]).reshape(attention["rows"], attention["cols"])
            np.testing.assert_allclose(weights, reference.attention, atol=1e-6)
    assert f"http Translate model={model} texts={len(TEXTS)}: OK" in service.output()


def test_the_page_and_its_files_need_nothing_from_elsewhere(service: ServiceProcess) -> None:
    page = request(f"{service.http_url}/")
    assert page.status == 200 and page.headers["content-type"].startswith("text/html")
    linked = [link for link in re.findall(r'(?:src|href)="([^"]+)"', page.body.decode()) if link != "data:,"]
    assert linked and all(link.startswith("/") for link in linked)
    for link in linked:
        assert request(f"{service.http_url}{link}").status == 200, link
    for path in STATIC.iterdir():
        assert not re.search(r"https?://", path.read_text()), f"{path.name} refers to another site"


def test_health_endpoints(service: ServiceProcess) -> None:
    assert request(f"{service.http_url}/healthz").json == {"status": "SERVING"}
    assert request(f"{service.http_url}/readyz").json == {"status": "SERVING"}


def test_attention_detail_over_http(service: ServiceProcess, engines: dict[str, Engine]) -> None:
    asked = {"texts": TEXTS[:2], "model": FP32_MODEL, "beam_size": 2, "attention_detail": True}
    reply = post_json(f"{service.http_url}/v1/translate", asked)
    assert reply.status == 200, reply.body
    expected = engines[FP32_MODEL].translate(TEXTS[:2], served_options(beam_size=2, attention_detail=True))
    for translation, reference in zip(reply.json["translations"], expected, strict=True):
        detail, want = translation["attention_detail"], reference.detail
        assert want is not None
        assert (detail["source_tokens"], detail["target_tokens"]) == (want.source_tokens, want.target_tokens)
        for kind, weights in (
            ("encoder_self_attention", want.encoder_self),
            ("decoder_self_attention", want.decoder_self),
            ("cross_attention", want.cross),
        ):
            layers, heads, rows, cols = weights.shape
            maps = detail[kind]
            assert [(m["layer"], m["head"]) for m in maps] == [(i, h) for i in range(layers) for h in range(heads)]
            assert all((m["rows"], m["cols"]) == (rows, cols) for m in maps)
            got = np.asarray([m["weights"] for m in maps]).reshape(weights.shape)
            np.testing.assert_allclose(got, weights, atol=1e-6)
    plain = post_json(f"{service.http_url}/v1/translate", {"texts": TEXTS[:1]}).json
    assert "attention_detail" not in plain["translations"][0]


def test_the_page_may_load_only_from_this_server(service: ServiceProcess) -> None:
    policy = request(f"{service.http_url}/").headers["content-security-policy"]
    assert "default-src 'self'" in policy
