"""Casing patterns: detected, the model given sentence case, the pattern put back on the translation."""

from __future__ import annotations

import pytest

from service.text.casing import Casing, detect, restore, to_sentence_case


@pytest.mark.parametrize(
    ("sentence", "casing"),
    [
        ("A MAN RIDES A BIKE.", Casing.UPPER),
        ("TWO DOGS!", Casing.UPPER),
        ("A Man Rides A Red Bike.", Casing.TITLE),
        ("A man rides a bike.", Casing.AS_IS),
        ("NASA launches a rocket.", Casing.AS_IS),
        ("John Smith.", Casing.AS_IS),  # two capitalised words: a name, not Title Case
        ("USA", Casing.AS_IS),  # one word: an acronym
        ("12 345 !", Casing.AS_IS),
        ("", Casing.AS_IS),
    ],
)
def test_detect(sentence: str, casing: Casing) -> None:
    assert detect(sentence) == casing


def test_sentence_case_for_the_model_and_the_pattern_restored() -> None:
    assert to_sentence_case("A MAN RIDES A BIKE.", Casing.UPPER) == "A man rides a bike."
    assert to_sentence_case("« A MAN RIDES »", Casing.UPPER) == "« A man rides »"
    assert to_sentence_case("AND A DOG.", Casing.UPPER, first=False) == "and a dog."
    assert to_sentence_case("A Man Rides A Red Bike.", Casing.TITLE) == "A man rides a red bike."
    assert to_sentence_case("A man, ok.", Casing.AS_IS) == "A man, ok."
    assert restore("Un homme fait du vélo.", Casing.UPPER) == "UN HOMME FAIT DU VÉLO."
    assert restore("un homme fait du vélo.", Casing.TITLE) == "Un Homme Fait Du Vélo."
    assert restore("Un homme.", Casing.AS_IS) == "Un homme."
