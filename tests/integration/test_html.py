"""HTML requests end to end, through the service process and the tiny model: the markup survives translation.

The assertions are on structure (well-formed, the same tags in the same nesting, kept content byte for byte,
attribute values), and on each block reading as the model's translation of the block alone: never on what
the tiny model makes of a word.
"""

from __future__ import annotations

import subprocess
import sys

import grpc
import pytest

from bench.server import ROOT
from service.decoding.engine import Engine
from service.text.markup import parse
from tests.integration.calls import FP32_MODEL, MODEL, served_options
from tests.support.markup import repaired, tag_tree, text_of
from tests.support.service_process import ServiceProcess

KEPT = [
    '<meta charset="utf-8">',
    "<style>p > b { color: red }</style>",
    "<pre>cat  dog &lt;tree&gt;</pre>",
    "<code>x &lt; y</code>",
    '<span translate="no">blue book</span>',
    '<script>if (a < b && c) { run("cat") }</script>',
    "<!-- keep me -->",
    '<img src="sun.png" alt="sun">',
]
PAGE = f"""<!DOCTYPE html>
<html lang="en"><head>{KEPT[0]}<title>big red car</title>{KEPT[1]}</head>
<body>
<h1 class="title">small <b>dog</b></h1>
<p id="p1">the <a href="/cars?id=1&amp;x=2" title="a &quot;car&quot;">big <i>red</i> car</a> and <span lang="en">green
  tree</span><br>man {KEPT[7]} woman {KEPT[6]} child</p>
{KEPT[2]}
<p>water {KEPT[3]} moon {KEPT[4]} bread &amp; sun</p>
{KEPT[5]}
<ul><li>house</li><li>big <em>tree</em></li></ul>
</body></html>
"""
BLOCKS = ["<p>big <b>red</b> car</p>", '<h2>small <i>dog</i> and <a href="/g">green tree</a></h2>']


def test_a_page_keeps_its_markup(service: ServiceProcess) -> None:
    with service.client() as client:
        response = client.translate([PAGE], format="html")
    [hypothesis] = response.translations[0].hypotheses
    out = hypothesis.text
    assert out.startswith("<!DOCTYPE html>")
    assert tag_tree(out) == tag_tree(repaired(PAGE))  # well-formed, same tags, same attribute values
    for kept in KEPT:
        assert out.count(kept) == 1, kept
    assert "big red car" not in out and "green\n  tree" not in out  # the text was translated
    assert len(hypothesis.tokens) > 0 and not response.translations[0].source_tokens


def test_each_block_reads_as_its_translation_alone(service: ServiceProcess, engines: dict[str, Engine]) -> None:
    """fp32 answers do not depend on the batch: a block's text is the model's translation of the block alone."""
    options = served_options(beam_size=3, n_best=2)
    with service.client() as client:
        response = client.translate(BLOCKS, model=FP32_MODEL, beam_size=3, n_best=2, return_scores=True, format=1)
    for html, translation in zip(BLOCKS, response.translations, strict=True):
        [block] = parse(html).blocks
        [expected] = engines[FP32_MODEL].translate([block.source], options)
        assert len(translation.hypotheses) == 2
        for got, want in zip(translation.hypotheses, expected.hypotheses, strict=True):
            assert text_of(got.text) == want.text
            assert tag_tree(got.text) == tag_tree(html)
            assert list(got.tokens) == want.tokens
            assert got.score == pytest.approx(want.score, abs=1e-4)


def test_plain_text_is_the_default(service: ServiceProcess, engines: dict[str, Engine]) -> None:
    text = "<b>big</b> car"
    with service.client() as client:
        response = client.translate([text])
    assert (
        response.translations[0].hypotheses[0].text == engines[MODEL].translate([text], served_options())[0].best.text
    )


def test_html_requests_outside_the_limits(service: ServiceProcess, engines: dict[str, Engine]) -> None:
    limit = engines[MODEL].max_source_tokens
    calls = {
        "format is 7; it must be one of TEXT_FORMAT_PLAIN (0), TEXT_FORMAT_HTML (1)": dict(texts=["cat"], format=7),
        "return_attention is not available with format TEXT_FORMAT_HTML": dict(
            texts=["cat"], format="html", return_attention=True
        ),
        f"texts[1] has a block of {limit + 1} tokens (block 2 of 2": dict(
            texts=["cat", "<p>dog</p><p>" + "cat " * limit + "</p>"], format="html"
        ),
    }
    with service.client() as client:
        for message, call in calls.items():
            with pytest.raises(grpc.RpcError) as error:
                client.translate(**call)
            assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert (error.value.details() or "").startswith(message)


def test_command_line_client_translates_stdin_as_one_html_text(service: ServiceProcess) -> None:
    command = [sys.executable, "-m", "service.client", "--address", service.address, "--html"]
    result = subprocess.run(command, cwd=ROOT, input=PAGE, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("<!DOCTYPE html>")
    assert tag_tree(result.stdout) == tag_tree(repaired(PAGE))
