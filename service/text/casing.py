"""ALL-CAPS and Title Case sentences: translated in sentence case, their pattern put back on the translation.

The models learned from sentence-case captions; a sentence in capitals is a string of subwords they hardly
ever saw. `detect` names the pattern, `to_sentence_case` is what the model gets, `restore` applies the
pattern to the translation.
"""

from __future__ import annotations

import enum
import re

WORD = re.compile(r"\S+")
MIN_WORDS = 2  # one capitalised word is a name or an acronym, not a casing pattern
MIN_TITLE_WORDS = 3  # "John Smith." is a name, not Title Case


class Casing(enum.Enum):
    """How a sentence is cased."""

    AS_IS = "as_is"  # sentence case or mixed: left alone
    UPPER = "upper"  # every cased letter is a capital
    TITLE = "title"  # every word starts with a capital, and some letters are small


def detect(sentence: str) -> Casing:
    """The casing pattern of a sentence: UPPER (two words or more) or TITLE (three or more), else AS_IS.

    str.isupper and str.istitle run at C speed: a document's sentences are all checked on the event loop."""
    if sentence.isupper() and sum(map(str.isupper, sentence.split())) >= MIN_WORDS:
        return Casing.UPPER
    if sentence.istitle() and sum(map(str.istitle, sentence.split())) >= MIN_TITLE_WORDS:
        return Casing.TITLE
    return Casing.AS_IS


def to_sentence_case(sentence: str, casing: Casing, first: bool = True) -> str:
    """The sentence as the model expects it: small letters but for the first (`first`: of the sentence, not
    of a later part of it)."""
    if casing is Casing.AS_IS:
        return sentence
    lowered = sentence.lower()
    return _capitalize_first_letter(lowered) if first else lowered


def restore(translation: str, casing: Casing) -> str:
    """The translation cased like its source."""
    if casing is Casing.UPPER:
        return translation.upper()
    if casing is Casing.TITLE:
        return WORD.sub(lambda m: _capitalize_first_letter(m.group()), translation)
    return translation


def _capitalize_first_letter(text: str) -> str:
    for i, c in enumerate(text):
        if c.isalpha():
            return text[:i] + c.upper() + text[i + 1 :]
    return text
