"""The lexical shortlist: for each source subword, the target subwords worth scoring (as Marian's lexical
shortlists and CTranslate2's vocabulary map), plus words always scored (the most frequent, end of sentence).

A batch's candidates are the union over its source ids. The projection graph (model/shortlist_graph.py) turns
them (`vocabulary`, int64, sorted, (V',)) into the output projection restricted to them, once per batch; the
shortlist decoder takes that at every step and returns log-probabilities over the candidates only (log-softmax
over the subset). The engine puts those back at their full-vocabulary ids, -inf elsewhere, so the search and
everything after it see full-vocabulary ids.

The file (`shortlist.npz`, numpy's format, no pickles): `offsets` (V + 1,) and `targets`: the candidates of
source id s are targets[offsets[s]:offsets[s + 1]]; `always`: ids scored for every batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort

from service.decoding.manifest import ModelLoadError

SHORTLIST_FILE = "shortlist.npz"
VOCABULARY_INPUT = "vocabulary"
ARRAYS = ("offsets", "targets", "always")


class Shortlist:
    """Candidate target ids per source id, and ids always among the candidates."""

    def __init__(self, offsets: np.ndarray, targets: np.ndarray, always: np.ndarray, vocab_size: int) -> None:
        self.offsets, self.targets, self.always = offsets, targets, always
        self.vocab_size = vocab_size

    @classmethod
    def from_lists(cls, per_source: Sequence[Sequence[int]], always: Sequence[int]) -> Shortlist:
        """A shortlist from each source id's candidate list (index = source id)."""
        lengths = np.array([len(c) for c in per_source], dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        targets = np.array([t for c in per_source for t in c], dtype=np.int64)
        return cls(offsets, targets, np.unique(np.asarray(always, dtype=np.int64)), len(per_source))

    @classmethod
    def load(cls, path: Path, vocab_size: int, required: Sequence[int] = ()) -> Shortlist:
        """Read and check a shortlist file for a vocabulary of `vocab_size` ids, `required` ids added to those
        always scored; ModelLoadError if it is not one."""
        if not path.is_file():
            raise ModelLoadError(f"shortlist {path} is missing from the model directory")
        try:
            with np.load(path, allow_pickle=False) as data:
                missing = [name for name in ARRAYS if name not in data.files]
                arrays = {name: data[name] for name in ARRAYS if name in data.files}
        except (OSError, ValueError) as exc:  # not a numpy archive, truncated, or holding pickles
            raise ModelLoadError(f"shortlist {path} is not a readable .npz file of integer arrays: {exc}") from exc
        if missing:
            lacks, needs = ", ".join(missing), ", ".join(ARRAYS)
            raise ModelLoadError(f"shortlist {path} is malformed: it lacks {lacks} (it needs {needs})")
        problem = _problem(arrays, vocab_size)
        if problem:
            raise ModelLoadError(f"shortlist {path} is malformed: {problem}")
        always = np.union1d(arrays["always"], np.asarray(required, dtype=np.int64))
        return cls(arrays["offsets"], arrays["targets"], always, vocab_size)

    def save(self, path: Path) -> None:
        np.savez_compressed(path, offsets=self.offsets, targets=self.targets.astype(np.int32), always=self.always)

    def candidates(self, sources: Sequence[Sequence[int]]) -> np.ndarray:
        """The sorted target ids to score for a batch of source id sequences."""
        chosen = np.zeros(self.vocab_size, dtype=bool)
        chosen[self.always] = True
        for source in np.unique(np.concatenate([np.asarray(s, dtype=np.int64) for s in sources])):
            chosen[self.targets[self.offsets[source] : self.offsets[source + 1]]] = True
        return np.flatnonzero(chosen).astype(np.int64)


def _problem(arrays: dict[str, np.ndarray], vocab_size: int) -> str:
    """What is wrong with a shortlist's arrays, or ""."""
    offsets, targets = arrays["offsets"], arrays["targets"]
    for name, array in arrays.items():
        if array.ndim != 1 or not np.issubdtype(array.dtype, np.integer):
            return f"{name} must be a one-dimensional integer array, not {array.dtype} {array.shape}"
        if array.size and (array.min() < 0 or (name != "offsets" and array.max() >= vocab_size)):
            return f"{name} holds ids outside the vocabulary 0..{vocab_size - 1}"
    if len(offsets) != vocab_size + 1:
        return f"offsets has {len(offsets)} entries; a vocabulary of {vocab_size} needs {vocab_size + 1}"
    if offsets[0] != 0 or offsets[-1] != len(targets) or np.any(np.diff(offsets) < 0):
        return f"offsets must rise from 0 to the number of targets ({len(targets)})"
    return ""


class ShortlistProjection:
    """A shortlist and its projection graph: a batch's candidate ids, and the output projection restricted to
    them that the shortlist decoder takes at every step."""

    def __init__(self, shortlist: Shortlist, session: ort.InferenceSession) -> None:
        self._shortlist, self._session = shortlist, session
        self._outputs = [o.name for o in session.get_outputs()]

    @property
    def projection_outputs(self) -> set[str]:
        """The decoder inputs the projection graph provides."""
        return set(self._outputs)

    def candidates(self, sources: Sequence[Sequence[int]]) -> np.ndarray:
        return self._shortlist.candidates(sources)

    def restricted_projection(self, vocabulary: np.ndarray) -> dict[str, np.ndarray]:
        """The decoder's restricted projection inputs for these candidate ids, by name."""
        restricted = self._session.run(self._outputs, {VOCABULARY_INPUT: vocabulary})
        return dict(zip(self._outputs, restricted, strict=True))
