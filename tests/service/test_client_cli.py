"""The command line client against a real server."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from service.client import main
from tests.service.harness import ServerThread
from tests.support.markup import tag_tree, text_of

Start = Callable[..., ServerThread]


def test_translates_arguments_as_text(start_server: Start, capsys: pytest.CaptureFixture[str]) -> None:
    server = start_server()
    assert main(["--address", server.address, "hello world", "good morning"]) == 0
    assert capsys.readouterr().out == "world hello\nmorning good\n"


def test_translates_stdin_in_batches_as_json(
    start_server: Start, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    server = start_server()
    monkeypatch.setattr("sys.stdin", io.StringIO("one two\nthree four\nfive six\n"))
    assert main(["--address", server.address, "--batch-size", "2", "--json", "--scores"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["source"] for line in lines] == ["one two", "three four", "five six"]
    assert [line["hypotheses"][0]["text"] for line in lines] == ["two one", "four three", "six five"]
    assert lines[0]["hypotheses"][0]["score"] == -1.0
    assert server.sample("mt_requests_total", {"method": "Translate", "model": "en-fr", "code": "OK"}) == 2


def test_n_best(start_server: Start, capsys: pytest.CaptureFixture[str]) -> None:
    server = start_server()
    assert main(["--address", server.address, "--beam-size", "2", "--n-best", "2", "a b"]) == 0
    assert capsys.readouterr().out == "b a\nb a #1\n\n"


def test_attention_heatmap(start_server: Start, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    server = start_server()
    image = tmp_path / "attention.png"
    assert main(["--address", server.address, "--attention", str(image), "the cat sat", "mat"]) == 0
    assert image.read_bytes().startswith(b"\x89PNG")
    assert capsys.readouterr().out == "sat cat the\nmat\n"


def test_errors_go_to_stderr(start_server: Start, capsys: pytest.CaptureFixture[str]) -> None:
    server = start_server()
    assert main(["--address", server.address, "--model", "nope", "x"]) == 1
    assert capsys.readouterr().err == "error: NOT_FOUND: unknown model 'nope'; available models: en-fr\n"


def test_list_models(start_server: Start, capsys: pytest.CaptureFixture[str]) -> None:
    server = start_server()
    assert main(["--address", server.address, "--list-models"]) == 0
    assert json.loads(capsys.readouterr().out)["name"] == "en-fr"


def test_html_reads_stdin_as_one_html_text(
    start_server: Start, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    server = start_server()
    monkeypatch.setattr("sys.stdin", io.StringIO("<p>one <b>two</b></p>\n<pre>kept  as is</pre>\n"))
    assert main(["--address", server.address, "--html"]) == 0
    out = capsys.readouterr().out
    assert text_of(out) == "two one\nkept  as is\n"  # the fake model reverses the words of each block
    assert tag_tree(out, ordered=True) == (("p", (), (("b", (), ()),)), ("pre", (), ()))
    assert server.sample("mt_requests_total", {"method": "Translate", "model": "en-fr", "code": "OK"}) == 1


def test_translates_a_document_from_a_file_keeping_its_layout(
    start_server: Start, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    server = start_server()
    path = tmp_path / "doc.txt"
    path.write_text("Hello big world. Good morning!\n\n- one two\n")
    assert main(["--address", server.address, "--document", str(path)]) == 0
    assert capsys.readouterr().out == "world. big Hello morning! Good\n\n- two one\n"


def test_translates_stdin_as_one_document_as_json(
    start_server: Start, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    server = start_server()
    monkeypatch.setattr("sys.stdin", io.StringIO("One two. Three four.\n"))
    assert main(["--address", server.address, "--document", "-", "--json"]) == 0
    [line] = capsys.readouterr().out.splitlines()
    entry = json.loads(line)
    assert entry["hypotheses"][0]["text"] == "two. One four. Three\n"
    assert [(s.get("start", 0), s["end"]) for s in entry["segments"]] == [(0, 8), (9, 20)]
    assert server.sample("mt_requests_total", {"method": "Translate", "model": "en-fr", "code": "OK"}) == 1


def test_a_missing_document_is_a_clear_error(start_server: Start, capsys: pytest.CaptureFixture[str]) -> None:
    server = start_server()
    assert main(["--address", server.address, "--document", "/nonexistent/doc.txt"]) == 1
    assert capsys.readouterr().err.startswith("error: [Errno 2] No such file or directory")
