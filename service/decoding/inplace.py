"""The in-place decoder cache: rows of one preallocated buffer per layer, stepped by the "inplace" graph.

The graph (model/step_graph.py) writes each step's self-attention keys/values at one shared write slot of a
buffer (rows, H, capacity, D), bound as both its `cache_*` input and `present_*` output, so a step copies no
cache. The buffer layout, and how a scheduler uses it:

* **Rows** are sentence-major: sentence b owns rows b*W .. b*W + W - 1 (W beams, the same for every
  sentence of the buffer). The cross-attention keys/values are kept once per sentence (B, H, S, D).
  Sentences with different row counts cannot share W: they get W = 1 with their keys/values repeated per
  row (still in place, beams then reorder by copying rows).
* **Beams reorder by index**: `select` with rows that keep whole sentences rewrites `cache_indirection`
  (B, W, capacity), which names for every slot the beam whose keys/values a row reads; the cache is not
  touched. Sentences leaving compact the buffer (their survivors' rows copied forward, up to the write
  slot): once per finished sentence, not once per step.
* **Joining at another step**: each row has its own position (`positions`, fed to the sinusoidal table)
  and its own cache mask (`mask`, 1 on the slots it owns). A sentence that joins a running buffer at write
  slot t gets rows whose mask is 0 before t and position 0 at t (`step_rows` feeds each row at its own
  position); it then shares every later call with the rows already there. The scheduler
  (service/scheduling) joins sentences in cohorts today, each cohort a buffer of its own: merging cohorts
  into one buffer needs only rows appended with such a mask (and the source keys/values padded to the
  longer source), no change to the graph.
* **Capacity** starts at the longest output the sentences may have by default and doubles (one copy) when
  the write slot reaches it.
"""

from __future__ import annotations

import numpy as np
import onnxruntime as ort

from service.decoding.search import Candidates

NGRAM_MARGIN = 8  # candidates per row beyond 2 x beams, for the ones the repeat guard removes


class InPlaceDecoder:
    """The "inplace" decoder session over one encoded batch, with its preallocated cache (see the module docstring)."""

    def __init__(
        self,
        session: ort.InferenceSession,
        memory: dict[str, np.ndarray],
        source_mask: np.ndarray,
        rows_per_sentence: int | np.ndarray,
        capacity: int,
        top_k: int,
    ):
        counts = np.broadcast_to(np.asarray(rows_per_sentence), (len(source_mask),))
        self._session = session
        self._width = int(counts[0]) if (counts == counts[0]).all() else 1
        if self._width == 1 and (counts != 1).any():  # unequal rows per sentence: one "sentence" per row
            rows_of = np.repeat(np.arange(len(source_mask)), counts)
            memory, source_mask = {n: m[rows_of] for n, m in memory.items()}, source_mask[rows_of]
        self._memory, self._source_mask = memory, source_mask
        _, heads, _, head_size = next(iter(memory.values())).shape
        rows = len(source_mask) * self._width
        names = [i.name for i in session.get_inputs() if i.name.startswith(("cache_key_", "cache_value_"))]
        self._caches = {n: np.zeros((rows, heads, capacity, head_size), np.float32) for n in names}
        self.mask = np.ones((rows, capacity), np.int32)
        self._indirection = _own_beams(len(source_mask), self._width, capacity)
        self.positions = np.zeros(rows, np.int64)
        self._slot = 0
        self._slot_input = np.zeros(1, np.int32)
        self._top_k = np.array([top_k], np.int64)
        self._binding = session.io_binding()
        self._bind_rows()

    @property
    def rows(self) -> int:
        return len(self.positions)

    def _bind_rows(self) -> None:
        """Bind every input and output to arrays of this object, once per change of rows: a step then only
        writes its tokens and slot into them (the caches are input and output at once: one buffer)."""
        binding, rows = self._binding, self.rows
        binding.clear_binding_inputs()
        binding.clear_binding_outputs()
        self._tokens = np.zeros(rows, np.int64)
        self._outputs: dict[str, np.ndarray] = {
            "token_ids": np.zeros((rows, int(self._top_k[0])), np.int64),
            "log_probs": np.zeros((rows, int(self._top_k[0])), np.float32),
            "attention": np.zeros((rows, self._source_mask.shape[1]), np.float32),
        }
        inputs = {
            **self._memory,
            "source_mask": self._source_mask,
            "beam_width": np.array([self._width], np.int32),
            "top_k": self._top_k,
            "token": self._tokens,
            "position": self.positions,
            "past_sequence_length": self._slot_input,
            "self_mask": self.mask,
            "cache_indirection": self._indirection,
        }
        self._bound = [ort.OrtValue.ortvalue_from_numpy(a) for a in (*inputs.values(), *self._outputs.values())]
        for name, value in zip([*inputs, *self._outputs], self._bound, strict=True):
            if name in self._outputs:
                binding.bind_ortvalue_output(name, value)
            else:
                binding.bind_ortvalue_input(name, value)
        for name, cache in self._caches.items():
            value = ort.OrtValue.ortvalue_from_numpy(cache)
            self._bound.append(value)
            binding.bind_ortvalue_input(name, value)
            binding.bind_ortvalue_output(name.replace("cache_", "present_"), value)

    def step(self, tokens: np.ndarray, position: int) -> tuple[Candidates, np.ndarray]:
        """Feed one token per row; every row is at `position` (rows of one cohort). Returns each row's top-k
        candidates and its cross-attention (rows, S)."""
        self.positions.fill(position)
        return self.step_rows(tokens)

    def step_rows(self, tokens: np.ndarray) -> tuple[Candidates, np.ndarray]:
        """Feed one token per row at each row's own position (`positions`), written at the shared slot."""
        if self._slot == self.mask.shape[1]:
            self._grow()
        self._tokens[:] = tokens
        self._slot_input[0] = self._slot
        self._session.run_with_iobinding(self._binding)
        self._slot += 1
        self.positions += 1
        outputs = self._outputs  # written again by the next step: copies
        return Candidates(outputs["token_ids"].copy(), outputs["log_probs"].copy()), outputs["attention"].copy()

    def select(self, rows: np.ndarray) -> None:
        """Keep these rows in this order: beams of a sentence reorder by index, leaving sentences compact."""
        rows = np.asarray(rows)
        width = self._width
        if len(rows) == self.rows and (rows == np.arange(self.rows)).all():
            return
        positions = self.positions[rows]
        blocks = rows.reshape(-1, width) if len(rows) % width == 0 else None
        if blocks is None or not (blocks // width == blocks[:, :1] // width).all():
            self.positions = positions
            self._gather_rows(rows)
            return
        sentences = blocks[:, 0] // width
        if np.array_equal(sentences, np.arange(len(self._source_mask))):
            self.positions[:] = positions  # bound: written in place
        else:
            self.positions = positions
            self._keep_sentences(sentences)
        beams = (blocks % width).astype(np.intp)
        past = self._indirection[:, :, : self._slot]
        self._indirection[:, :, : self._slot] = np.take_along_axis(past, beams[:, :, None], axis=1)

    def _keep_sentences(self, sentences: np.ndarray) -> None:
        """Compact the buffer to these sentences (all their rows, in their physical order)."""
        physical = (sentences[:, None] * self._width + np.arange(self._width)).reshape(-1)
        slot, n = self._slot, len(physical)
        for cache in self._caches.values():
            cache[:n, :, :slot] = cache[physical, :, :slot]
        self._caches = {name: cache[:n] for name, cache in self._caches.items()}
        self.mask = self.mask[physical]
        self._indirection = self._indirection[sentences]
        self._memory = {name: m[sentences] for name, m in self._memory.items()}
        self._source_mask = self._source_mask[sentences]
        self._bind_rows()

    def _gather_rows(self, rows: np.ndarray) -> None:
        """Any other selection: copy each kept row's keys/values (read through the indirection) to its own row,
        one sentence per row from then on (W = 1)."""
        width, slot = self._width, self._slot
        sentence, beam = rows // width, rows % width
        physical = sentence[:, None] * width + self._indirection[sentence, beam, :slot]  # (rows, slot)
        steps = np.arange(slot)[None, :]
        capacity = self.mask.shape[1]
        for name, cache in self._caches.items():
            fresh = np.zeros((len(rows), *cache.shape[1:]), np.float32)
            fresh[:, :, :slot] = cache[physical, :, steps].transpose(0, 2, 1, 3)
            self._caches[name] = fresh
        self.mask = self.mask[rows]
        self._width = 1
        self._indirection = np.zeros((len(rows), 1, capacity), np.int32)
        self._memory = {name: m[sentence] for name, m in self._memory.items()}
        self._source_mask = self._source_mask[sentence]
        self._bind_rows()

    def _grow(self) -> None:
        """Double the capacity (one copy of the caches, the masks and the indirection)."""
        capacity = 2 * self.mask.shape[1]
        for name, cache in self._caches.items():
            grown = np.zeros((*cache.shape[:2], capacity, cache.shape[3]), np.float32)
            grown[:, :, : self._slot] = cache[:, :, : self._slot]
            self._caches[name] = grown
        self.mask = np.pad(self.mask, ((0, 0), (0, capacity - self.mask.shape[1])), constant_values=1)
        sentences, extra = len(self._indirection), capacity - self._indirection.shape[2]
        self._indirection = np.concatenate([self._indirection, _own_beams(sentences, self._width, extra)], axis=2)
        self._bind_rows()


def _own_beams(sentences: int, width: int, slots: int) -> np.ndarray:
    """A cache indirection where every row reads its own keys/values: (sentences, width, slots)."""
    return np.tile(np.arange(width, dtype=np.int32)[None, :, None], (sentences, 1, slots))
