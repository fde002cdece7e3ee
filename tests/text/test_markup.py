"""HTML round trips with hand-made translations: what is translated, what is kept byte for byte, which tags."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.text.markup import MAX_DEPTH, MarkupTooDeep, parse
from tests.support.markup import repaired, tag_tree, text_of
from tests.text.alignments import identity, render, reversed_upper, shuffled

NESTED = '<p>A <b>big <i>red</i> car</b> and <a href="/x">a <em>small</em> dog</a>.</p>'


def test_the_own_words_give_the_page_back_byte_for_byte() -> None:
    page = (
        '<div class="a">\n  <p>A <b>big <i>red</i> car</b>.</p>\n  <p>Two <a href="/b" title="t">dogs</a></p>\n</div>'
    )
    assert render(parse(page), identity) == page


def test_nesting_survives_reordering() -> None:
    out = render(parse(NESTED), reversed_upper)
    assert tag_tree(out) == tag_tree(NESTED)
    assert out == '<p><a href="/x">DOG. <em>SMALL</em> A</a> AND <b>CAR <i>RED</i> BIG</b> A</p>'
    assert text_of(out) == "DOG. SMALL A AND CAR RED BIG A"


def test_blocks_are_the_runs_between_block_elements() -> None:
    document = parse("<div>Intro <b>text</b><p>First para.</p> tail <ul><li>one</li><li>two <i>it</i></li></ul></div>")
    assert [block.text for block in document.blocks] == ["Intro text", "First para.", " tail ", "one", "two it"]
    assert [(t.start, t.end, t.open, t.close) for t in document.blocks[0].tags] == [(6, 10, "<b>", "</b>")]
    assert document.blocks[2].source == "tail" and document.blocks[2].offset == 1


def test_entities_are_decoded_for_the_model_and_escaped_again() -> None:
    document = parse("<p>Fish &amp; chips &lt;3 caf&eacute; &copy;&nbsp;x</p>")
    assert document.blocks[0].source == "Fish & chips <3 café ©\xa0x"
    out = render(document, lambda block: ("A & B <c> \xa0", []))
    assert out == "<p>A &amp; B &lt;c&gt; &nbsp;</p>"


def test_attributes_are_kept_with_their_values() -> None:
    page = """<p>See <a href="/x?a=1&amp;b=2" title='say "hi" &lt;now&gt;' data-n=3 hidden>this page</a>.</p>"""
    out = render(parse(page), reversed_upper)
    assert tag_tree(out) == tag_tree(page)
    assert '<a href="/x?a=1&amp;b=2" title="say &quot;hi&quot; &lt;now&gt;" data-n="3" hidden="">' in out


KEPT = [
    "<script>if (a < b && c) { go('x') }</script>",
    "<style>p > b { color: red }</style>",
    "<code>x &lt; y &amp;&amp; z</code>",
    "<pre>  two  spaces &lt;kept&gt;\n  and lines</pre>",
    '<span translate="no">Brand <b>Name</b></span>',
    '<div translate="no"><p>Not this</p></div>',
    '<span class="x notranslate">Other brand</span>',
]


@pytest.mark.parametrize("kept", KEPT)
def test_untranslated_content_is_kept_byte_for_byte(kept: str) -> None:
    page = f"<div><p>The words before {kept} and after.</p>{kept}</div>"
    document = parse(page)
    out = render(document, reversed_upper)
    assert out.count(kept) == 2
    assert all("Brand" not in b.text and "Not" not in b.text and "spaces" not in b.text for b in document.blocks)
    assert tag_tree(out) == tag_tree(repaired(page))  # a <pre> or <div> ends the <p> it was written in


def test_void_elements_and_comments_are_kept_once() -> None:
    page = '<p>One<br>two <img src="a.png" alt="an &quot;a&quot;"> three <!-- a note --> four<wbr>five</p>'
    document = parse(page)
    assert document.blocks[0].text == "One two  three  fourfive"
    for translate in (identity, reversed_upper):
        out = render(document, translate)
        assert tag_tree(out) == tag_tree(page)
        for kept in ("<br>", '<img src="a.png" alt="an &quot;a&quot;">', "<!-- a note -->", "<wbr>"):
            assert out.count(kept) == 1


def test_processing_instructions_stay_as_the_parser_wrote_them() -> None:
    page = "<p>A <?php echo 1 ?> word <![CDATA[x]]> here</p>"
    out = render(parse(page), reversed_upper)
    assert out.count("<?php echo 1 ?>") == 1 and out.count("<!--[CDATA[x]]-->") == 1
    assert tag_tree(out) == tag_tree(repaired(page))


def test_a_void_element_separates_words() -> None:
    assert [b.source for b in parse("<p>one<br>two<img src=x>three</p>").blocks] == ["one two three"]
    assert [b.source for b in parse("<p>un<!-- c -->believable<wbr>word</p>").blocks] == ["unbelievableword"]


def test_a_document_keeps_its_doctype_head_and_body() -> None:
    page = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>The title</title></head>'
        "<body><p>Some text.</p></body></html>"
    )
    out = render(parse(page), reversed_upper)
    assert out.startswith("<!DOCTYPE html>")
    assert "<title>TITLE THE</title>" in out and "<p>TEXT. SOME</p>" in out
    assert tag_tree(out) == tag_tree(page.replace("\n", ""))


def test_a_fragment_stays_a_fragment() -> None:
    assert render(parse("Just <b>text</b>"), reversed_upper) == "<b>TEXT</b> JUST"
    assert render(parse(""), reversed_upper) == ""
    assert render(parse("  \n "), reversed_upper) == "  \n "
    assert render(parse("<!-- only --><br>"), reversed_upper) == "<!-- only --><br>"


def test_whitespace_around_a_block_is_kept() -> None:
    assert render(parse("<p>\n   two words  \n</p>"), reversed_upper) == "<p>\n   WORDS TWO  \n</p>"


def test_an_element_that_holds_a_block_is_a_container() -> None:
    page = '<a href="/card"><div>Card title</div><p>Card text</p></a>'
    document = parse(page)
    assert [b.source for b in document.blocks] == ["Card title", "Card text"]
    assert tag_tree(render(document, reversed_upper)) == tag_tree(page)


BROKEN = [
    "<p>unclosed <b>bold <i>both</p><p>next",
    "<b><i>misnested</b></i> tail",
    "stray </div> close </span> text",
    "<span>inline <p>block inside</p> inline</span>",
    "<a href=/x?a=1&b=2 title=unquoted>link</a>",
    "a < b and c > d & e",
    "<p>unterminated <!-- comment",
    "nul\x00byte <b>x</b>",
    "text </body></html> more <b>after</b>",
    "<table><tr><td>cell<p>para</td></table>trailing",
    '<p attr="unterminated>text</p>',
    "<<>><</>",
    "<li>one<li>two",
    "<br/>self <img src='a.png'/> closing</br>",
    "&bogus; &amp &#xZZ; &#128512;",
    "<html><body><p>a</p></html><p>after the end",
    "<select><option>one<option>two</select> words",
    "<svg><text>vector</text></svg> words <math><mi>x</mi></math>",
    "<b>" * 50 + "deep" + "</i>" * 10,
]


@pytest.mark.parametrize("page", BROKEN)
def test_broken_html_is_repaired_not_refused(page: str) -> None:
    out = render(parse(page), reversed_upper)
    assert tag_tree(out) == tag_tree(repaired(page))


def test_nesting_up_to_the_limit_is_fine_and_deeper_is_refused() -> None:
    deepest = "<div>" * (MAX_DEPTH - 2) + "<span><b>deep</b> <i>text</i></span>"
    assert render(parse(deepest), identity) == repaired(deepest)
    assert render(parse(deepest), reversed_upper).endswith("<span><i>TEXT</i> <b>DEEP</b></span>" + "</div>" * 510)
    assert render(parse("<b>" * MAX_DEPTH + "x y"), reversed_upper) == "<b>" * MAX_DEPTH + "Y X" + "</b>" * MAX_DEPTH
    for page in ("<b>" * (MAX_DEPTH + 1) + "x", "<div>" * 5000, "<p>" + "<span>" * 5000 + "x"):
        with pytest.raises(MarkupTooDeep, match=f"nests elements more than {MAX_DEPTH} deep"):
            parse(page)
    kept = "<pre>" + "<span>" * 5000 + "</span>" * 5000 + "</pre>"  # never walked: kept as it is
    assert render(parse(kept), reversed_upper) == kept


PIECES = st.sampled_from(
    [
        "word",
        "two words",
        " ",
        "\n",
        ".",
        "&amp;",
        "&lt;",
        "&nbsp;",
        "<b>",
        "</b>",
        "<i>",
        "</i>",
        '<a href="/x?y=1&amp;z">',
        "</a>",
        "<span>",
        "</span>",
        "<p>",
        "</p>",
        "<div>",
        "</div>",
        "<li>",
        "<br>",
        "<img src=i.png>",
        "<!-- c -->",
        "<?pi x?>",
        "<![CDATA[y]]>",
        "<code>a &lt; b</code>",
        "<script>x < y</script>",
        '<em translate="no">',
        "</em>",
        "<",
        ">",
        '"',
    ]
)


@settings(max_examples=300, deadline=None, database=None)
@given(pieces=st.lists(PIECES, max_size=40), seed=st.integers(0, 2**16))
def test_any_mix_of_markup_renders_well_formed_with_the_same_tags(pieces: list[str], seed: int) -> None:
    """Words dropped, doubled and shuffled: the output is well-formed, with the tags of the repaired input."""
    page = "".join(pieces)
    assert tag_tree(render(parse(page), shuffled(seed))) == tag_tree(repaired(page))


@settings(max_examples=300, deadline=None, database=None)
@given(pieces=st.lists(PIECES, max_size=40))
def test_any_mix_of_markup_keeps_all_of_its_text(pieces: list[str]) -> None:
    """With its own words as translation, the page reads as the repaired input (spaces aside: a <br> between
    two words gives the model a space)."""
    page = "".join(pieces)
    assert "".join(text_of(render(parse(page), identity)).split()) == "".join(text_of(repaired(page)).split())
