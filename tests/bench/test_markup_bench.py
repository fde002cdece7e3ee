"""The markup benchmark runs and reports every stage of both pages."""

from __future__ import annotations

import pytest

from bench.markup_bench import large_page, main
from service.text.markup import parse
from tests.support.markup import repaired, tag_tree


def test_reports_each_stage(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--sections", "3", "--repeats", "3", "--large-repeats", "2"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("machine: ")
    assert "one paragraph: " in out and "large page (3 sections): " in out and ", 16 blocks" in out
    assert out.count(" p50 ") == 8 and out.count(" p99 ") == 8


def test_the_large_page_is_well_formed_html() -> None:
    page = large_page(2)
    assert tag_tree(repaired(page)) == tag_tree(page)  # nothing for the parser to repair
    assert len(parse(page).blocks) == 11  # the title and five per section
