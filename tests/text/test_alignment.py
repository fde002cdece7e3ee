"""Word alignment from hand-made attention matrices."""

from __future__ import annotations

import numpy as np

from service.text.alignment import Link, piece_words, shifted, text_words, word_alignment

SOURCE = ["▁A", "▁man", "▁rid", "es", "▁a", "▁bike", ".", "</s>"]
TARGET = ["▁Un", "▁homme", "▁fait", "▁du", "▁vé", "lo", "."]
SOURCE_TEXT, TARGET_TEXT = "A man rides a bike.", "Un homme fait du vélo."


def one_hot(rows: list[int], cols: int) -> np.ndarray:
    """Attention where target piece i looks only at source piece rows[i]."""
    weights = np.zeros((len(rows), cols), dtype=np.float32)
    weights[np.arange(len(rows)), rows] = 1.0
    return weights


def test_pieces_group_into_words() -> None:
    assert piece_words(SOURCE) == [[0], [1], [2, 3], [4], [5, 6]]
    assert piece_words(["▁", "É", "té", "▁x", "</s>"]) == [[0, 1, 2], [3]]
    assert piece_words(["abc", "▁d"]) == [[0], [1]]  # a first piece without "▁" still starts a word
    assert piece_words(["</s>"]) == []


def test_each_target_word_goes_to_the_source_word_it_attends_to() -> None:
    attention = one_hot([0, 1, 2, 4, 5, 6, 6], len(SOURCE))  # "fait" -> "rid", "du" -> "a", "vé lo ." -> "bike."
    links = word_alignment(SOURCE, TARGET, attention, SOURCE_TEXT, TARGET_TEXT)
    pairs = {(TARGET_TEXT[slice(*link.target)], SOURCE_TEXT[slice(*link.source)]) for link in links}
    assert pairs == {("Un", "A"), ("homme", "man"), ("fait", "rides"), ("du", "a"), ("vélo.", "bike.")}


def test_subword_weights_are_summed_over_source_pieces_and_averaged_over_target_pieces() -> None:
    attention = np.zeros((3, 5), dtype=np.float32)
    attention[0] = [0.0, 0.3, 0.3, 0.4, 0.0]  # "▁vé": "▁rid es" together (0.6) beat "▁bike" (0.4)
    attention[1] = [0.0, 0.0, 0.0, 1.0, 0.0]  # "lo": all on "▁bike"; the word's mean: 0.3 vs 0.7
    attention[2] = [1.0, 0.0, 0.0, 0.0, 0.0]
    links = word_alignment(
        ["▁man", "▁rid", "es", "▁bike", "</s>"], ["▁vé", "lo", "▁homme"], attention, "man rides bike", "vélo homme"
    )
    assert Link((0, 4), (10, 14)) in links  # vélo -> bike
    assert Link((5, 10), (0, 3)) in links  # homme -> man


def test_the_end_of_sentence_column_is_left_out() -> None:
    attention = np.array([[0.2, 0.1, 0.7], [0.1, 0.3, 0.6]], dtype=np.float32)
    links = word_alignment(["▁big", "▁car", "</s>"], ["▁grande", "▁voiture"], attention, "big car", "grande voiture")
    assert links == [Link((0, 6), (0, 3)), Link((7, 14), (4, 7))]


def test_every_source_word_gets_a_link() -> None:
    attention = one_hot([0, 0], 4)  # both target words look at "▁the"; "▁red" gets the one looking at it most
    attention[1] = [0.5, 0.2, 0.3, 0.0]
    links = word_alignment(
        ["▁the", "▁red", "▁car", "</s>"], ["▁la", "▁voiture"], attention, "the red car", "la voiture"
    )
    assert {link.source for link in links} == {(0, 3), (4, 7), (8, 11)}
    assert Link((3, 10), (4, 7)) in links and Link((3, 10), (8, 11)) in links


def test_nothing_to_align() -> None:
    assert word_alignment(["</s>"], ["▁x"], np.ones((1, 1)), "", "x") == []
    assert word_alignment(["▁x", "</s>"], [], np.zeros((0, 2)), "x", "") == []


def test_words_of_a_normalized_text_are_spread_over_its_own_words() -> None:
    assert text_words("a b c", 3) == [(0, 1), (2, 3), (4, 5)]
    assert text_words("ab cd", 4) == [(0, 2), (0, 2), (3, 5), (3, 5)]
    assert text_words("", 2) == [(0, 0), (0, 0)]


def test_segment_links_shift_into_the_text() -> None:
    assert shifted([Link((0, 2), (3, 5))], 10, 20) == [Link((10, 12), (23, 25))]
