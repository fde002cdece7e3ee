"""Which language a text is written in: py3langid, whose model ships inside the package."""

from __future__ import annotations

import threading
from dataclasses import dataclass

from py3langid.langid import MODEL_DIR, MODEL_FILE, LanguageIdentifier

MIN_LETTERS = 3  # fewer letters than this: nothing to tell a language by
MAX_CHARS = 2000  # the start of a long document tells its language as well as all of it, for a fraction of the time
UNDETERMINED = ("zxx", "und")  # the identifier's labels for "no language"


@dataclass(frozen=True)
class Detection:
    """A text's language (ISO 639-1; "" when the text has too few letters) and how sure the identifier is."""

    language: str
    confidence: float


class LanguageDetector:
    """Identifies the language of texts; loads its model on first use (about a second), then is thread-safe."""

    def __init__(self) -> None:
        self._identifier: LanguageIdentifier | None = None
        self._lock = threading.Lock()

    def load(self) -> None:
        """Loads the model now (the server does it at start, not on the first request)."""
        with self._lock:
            if self._identifier is None:
                self._identifier = LanguageIdentifier.from_modelpath(MODEL_DIR / MODEL_FILE, norm_probs=True)

    def detect(self, text: str) -> Detection:
        """The language of `text`, from its first MAX_CHARS characters."""
        sample = text[:MAX_CHARS]
        if sum(c.isalpha() for c in sample) < MIN_LETTERS:
            return Detection("", 0.0)
        self.load()
        assert self._identifier is not None
        language, confidence = self._identifier.classify(sample)
        if language in UNDETERMINED:
            return Detection("", 0.0)
        return Detection(str(language), float(confidence))


DETECTOR = LanguageDetector()  # the process's one identifier: its model takes ~20 MB
