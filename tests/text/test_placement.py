"""Placing a block's tags in its translation from word links: conflicts, missing links, segments."""

from __future__ import annotations

from service.text.alignment import Link, shifted
from service.text.markup import Block, Tag, parse
from service.text.placement import render_block
from tests.support.markup import tag_tree


def bold(start: int, end: int, parent: int = -1) -> Tag:
    return Tag(start, end, "<b>", "</b>", parent, atom=False)


def test_a_tag_goes_around_the_target_words_of_its_source_words() -> None:
    [block] = parse("<p><b>big <i>red</i></b> car</p>").blocks
    links = [Link((14, 20), (0, 3)), Link((8, 13), (4, 7)), Link((0, 7), (8, 11))]  # grande, rouge, voiture
    assert render_block(block, "voiture rouge grande", links) == "voiture <b><i>rouge</i> grande</b>"


def test_a_tag_ends_before_the_punctuation_after_its_word() -> None:
    [block] = parse("<p>A <i>bike</i>.</p>").blocks
    links = [Link((0, 2), (0, 1)), Link((3, 8), (2, 7))]  # "Un" <- "A", "vélo." <- "bike."
    assert render_block(block, "Un vélo.", links) == "Un <i>vélo</i>."


def test_siblings_that_want_the_same_word_do_not_overlap() -> None:
    [block] = parse("<p><b>one</b> <i>two</i></p>").blocks
    out = render_block(block, "un", [Link((0, 2), (0, 3)), Link((0, 2), (4, 7))])
    assert out == "<b>un</b><i></i>"


def test_without_links_every_tag_is_still_there_once() -> None:
    block = Block(
        "a big red car", (bold(2, 9), Tag(6, 9, "<i>", "</i>", 0, atom=False), Tag(13, 13, "<br>", "", -1, True))
    )
    out = render_block(block, "x y z w", [])
    assert tag_tree(out, ordered=True) == (("b", (), (("i", (), ()),)), ("br", (), ()))


def test_an_atom_follows_the_target_words_of_the_source_word_before_it() -> None:
    [block] = parse("<p>red<br>car</p>").blocks
    assert block.text == "red car"
    links = [Link((0, 7), (4, 7)), Link((8, 13), (0, 3))]  # voiture <- car, rouge <- red
    assert render_block(block, "voiture rouge", links) == "voiture rouge<br>"


def test_a_block_translated_in_segments_takes_their_links_concatenated() -> None:
    [block] = parse("<p>One <b>big</b> car. Two <i>red</i> cars.</p>").blocks
    first = [Link((0, 3), (0, 3)), Link((4, 9), (4, 7)), Link((10, 14), (8, 12))]  # "Une grosse auto." per word
    second = [Link((0, 4), (0, 3)), Link((5, 10), (4, 7)), Link((11, 16), (8, 13))]  # "Deux rouge autos."
    translation = "Une grosse auto. Deux rouge autos."
    links = first + shifted(second, 17, 13)
    assert render_block(block, translation, links) == "Une <b>grosse</b> auto. Deux <i>rouge</i> autos."


def test_punctuation_goes_with_punctuation() -> None:
    [block] = parse("<p>the <b>green grass</b>.</p>").blocks
    links = [Link((0, 7), (10, 15)), Link((8, 14), (4, 9)), Link((8, 14), (15, 16))]  # l'herbe, verte.
    assert render_block(block, "l'herbe verte.", links) == "<b>l'herbe verte</b>."


def test_an_atom_between_spaces_stays_between_spaces() -> None:
    [block] = parse("<p>climbing <code>x()</code> outside</p>").blocks
    links = [Link((0, 5), (0, 8)), Link((6, 12), (10, 17))]
    assert render_block(block, "monte dehors", links) == "monte <code>x()</code> dehors"
