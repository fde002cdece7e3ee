"""The in-place decoder cache: rows of one preallocated buffer per layer, stepped by the "inplace" graph.

The graph (model/step_graph.py) writes each step's self-attention keys/values at one shared write slot of a
buffer (rows, H, capacity, D), bound as both its `cache_*` input and `present_*` output, so a step copies no
cache. The buffer layout, and how a scheduler uses it:

* **Rows** are sentence-major: physical sentence b owns rows b*W .. b*W + W - 1 (W beams, the same for
  every sentence of the buffer). The caller's (logical) order of sentences maps onto physical ones, so
  that sentences leaving cost a copy of only as many others (the last ones move into their places). The
  cross-attention keys/values are kept once per sentence (B, H, S, D).
  Sentences with different row counts cannot share W: they get W = 1 with their keys/values repeated per
  row (still in place, beams then reorder by copying rows).
* **Beams reorder by index**: `select` with rows that keep whole sentences rewrites `cache_indirection`
  (B, W, capacity), which names for every slot the beam whose keys/values a row reads; the cache is not
  touched. Sentences leaving free their rows: the physically last sentences move into them (their rows
  copied up to the write slot), once per finished sentence, not once per step.
* **Joining at another step**: each row has its own position (fed to the sinusoidal table) and its own
  cache mask (`mask`, 1 on the slots it owns). `absorb` appends a freshly encoded decoder's sentences to a
  running buffer at write slot t: their rows' mask is 0 before t, their position starts at 0 (they are
  `behind` the buffer's first rows by the steps they missed), their source keys/values are padded to the
  longer source. They then share every later call with the rows already there (the scheduler's merged
  cohorts, service/scheduling/cohort.py).
* **Capacity** starts at the longest output the sentences may have by default. Slots before every row's
  first owned slot are dead: once they are half of the written ones, the buffer shifts left over them (one
  copy), so a buffer that sentences keep joining neither grows without end nor attends over dead slots.
  When the write slot reaches the capacity with fewer dead slots, the capacity doubles (one copy).
"""

from __future__ import annotations

import numpy as np
import onnxruntime as ort

from service.decoding.search import Candidates

NGRAM_MARGIN = 8  # candidates per row beyond 2 x beams, for the ones the repeat guard removes


class InPlaceDecoder:
    """The "inplace" decoder session over one encoded batch, with its preallocated cache (see the module docstring).

    Every array with a row (or sentence) axis is storage with room for more rows than are live; the session
    is bound to views of the live ones, so rows that join are written into the room and need no copy of the
    rows already there."""

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
        self._sentences = len(source_mask)
        _, heads, _, head_size = next(iter(memory.values())).shape
        rows = self._sentences * self._width
        names = [i.name for i in session.get_inputs() if i.name.startswith(("cache_key_", "cache_value_"))]
        self._caches = {n: np.zeros((rows, heads, capacity, head_size), np.float32) for n in names}
        self._mask = np.ones((rows, capacity), np.int32)
        self._indirection = _own_beams(self._sentences, self._width, capacity)
        self._behind = np.zeros(rows, np.int64)  # steps of the buffer each row missed before it joined
        self._physical = np.arange(self._sentences)  # the physical sentence of each logical one
        self._slot = 0
        self._slot_input = np.zeros(1, np.int32)
        self._top_k = np.array([top_k], np.int64)
        self._binding = session.io_binding()
        self._bind_rows()

    @property
    def rows(self) -> int:
        return len(self._behind)

    @property
    def mask(self) -> np.ndarray:
        """The live rows' cache mask (rows, capacity): 1 on the slots a row owns."""
        return self._mask[: self.rows]

    def _bind_rows(self) -> None:
        """Bind every input and output to arrays of this object, once per change of rows: a step then only
        writes its tokens and slot into them (the caches are input and output at once: one buffer)."""
        binding, rows, sentences = self._binding, self.rows, self._sentences
        binding.clear_binding_inputs()
        binding.clear_binding_outputs()
        self._tokens = np.zeros(rows, np.int64)
        self._positions = np.zeros(rows, np.int64)
        self._map_rows()
        self._outputs: dict[str, np.ndarray] = {
            "token_ids": np.zeros((rows, int(self._top_k[0])), np.int64),
            "log_probs": np.zeros((rows, int(self._top_k[0])), np.float32),
            "attention": np.zeros((rows, self._source_mask.shape[1]), np.float32),
        }
        inputs = {
            **{name: memory[:sentences] for name, memory in self._memory.items()},
            "source_mask": self._source_mask[:sentences],
            "beam_width": np.array([self._width], np.int32),
            "top_k": self._top_k,
            "token": self._tokens,
            "position": self._positions,
            "past_sequence_length": self._slot_input,
            "self_mask": self._mask[:rows],
            "cache_indirection": self._indirection[:sentences],
        }
        self._bound = [ort.OrtValue.ortvalue_from_numpy(a) for a in (*inputs.values(), *self._outputs.values())]
        for name, value in zip([*inputs, *self._outputs], self._bound, strict=True):
            if name in self._outputs:
                binding.bind_ortvalue_output(name, value)
            else:
                binding.bind_ortvalue_input(name, value)
        for name, cache in self._caches.items():
            value = ort.OrtValue.ortvalue_from_numpy(cache[:rows])
            self._bound.append(value)
            binding.bind_ortvalue_input(name, value)
            binding.bind_ortvalue_output(name.replace("cache_", "present_"), value)

    def _map_rows(self) -> None:
        """The physical row of each logical one."""
        self._physical_rows = _rows_of(self._physical, self._width)

    def step(self, tokens: np.ndarray, position: int) -> tuple[Candidates, np.ndarray]:
        """Feed one token per row; `position` is that of the buffer's first rows, rows that joined later are
        behind it. Returns each row's top-k candidates and its cross-attention (rows, S)."""
        self._make_room()
        physical = self._physical_rows
        self._tokens[physical] = tokens
        self._positions[physical] = position - self._behind
        self._slot_input[0] = self._slot
        self._session.run_with_iobinding(self._binding)
        self._slot += 1
        outputs = self._outputs  # gathered in logical order: copies
        candidates = Candidates(outputs["token_ids"][physical], outputs["log_probs"][physical])
        return candidates, outputs["attention"][physical]

    def absorb(self, other: object, position: int) -> bool:
        """Append `other`'s sentences (an in-place decoder of the same session, not stepped yet) as rows that
        join at the next step, `position` being this buffer's; False (nothing changes) when their beams per
        sentence differ."""
        if not isinstance(other, InPlaceDecoder) or other._session is not self._session:
            return False
        if other._width != self._width or other._slot:
            return False
        rows, sentences = (
            slice(self.rows, self.rows + other.rows),
            slice(self._sentences, self._sentences + other._sentences),
        )
        source_length = max(self._source_mask.shape[1], other._source_mask.shape[1])
        for name, memory in self._memory.items():
            self._memory[name] = _with_room(_padded(memory, source_length), sentences.stop, sentences.start)
            self._memory[name][sentences] = _padded(other._memory[name][: other._sentences], source_length)
        self._source_mask = _with_room(_padded(self._source_mask, source_length), sentences.stop, sentences.start)
        self._source_mask[sentences] = _padded(other._source_mask[: other._sentences], source_length)
        self._caches = {n: _with_room(c, rows.stop, rows.start) for n, c in self._caches.items()}  # rows: masked
        self._mask = _with_room(self._mask, rows.stop, rows.start)
        self._mask[rows, : self._slot] = 0
        self._mask[rows, self._slot :] = 1
        self._indirection = _with_room(self._indirection, sentences.stop, sentences.start)
        self._indirection[sentences] = np.arange(self._width, dtype=np.int32)[None, :, None]
        self._behind = np.concatenate([self._behind, np.full(other.rows, position, np.int64)])
        self._physical = np.concatenate([self._physical, np.arange(sentences.start, sentences.stop)])
        self._sentences = sentences.stop
        self._top_k = np.maximum(self._top_k, other._top_k)
        self._bind_rows()
        return True

    def select(self, rows: np.ndarray) -> None:
        """Keep these rows in this order: beams of a sentence reorder by index, leaving sentences free theirs."""
        rows = np.asarray(rows)
        width = self._width
        if len(rows) == self.rows and (rows == np.arange(self.rows)).all():
            return
        self._behind = self._behind[rows]
        if len(rows) % width:  # a sentence split: its rows need keys/values of their own
            self._gather_rows(rows)
            return
        blocks = rows.reshape(-1, width)  # (sentences, W)
        owners = blocks // width
        if not (owners == owners[:, :1]).all() or not _distinct(owners[:, 0]):
            self._gather_rows(rows)  # a sentence split, or kept twice
            return
        sentences = owners[:, 0]
        physical = self._physical[sentences]
        beams = blocks % width  # (sentences, W): the beam each new beam continues
        past = self._indirection[physical, :, : self._slot]
        self._indirection[physical, :, : self._slot] = past[np.arange(len(physical))[:, None], beams]
        if len(sentences) < self._sentences:
            self._physical = self._fill_holes(physical)
            self._bind_rows()
        elif not (physical == self._physical).all():
            self._physical = physical
            self._map_rows()

    def _fill_holes(self, physical: np.ndarray) -> np.ndarray:
        """The kept sentences at `physical` take the first len(physical) sentence places: those beyond move
        into the free ones (their rows copied). Returns their new places."""
        count, width, slot = len(physical), self._width, self._slot
        movers = np.flatnonzero(physical >= count)
        holes = np.setdiff1d(np.arange(count), physical)
        source, target = physical[movers], holes
        source_rows, target_rows = _rows_of(source, width), _rows_of(target, width)
        for cache in self._caches.values():
            cache[target_rows, :, :slot] = cache[source_rows, :, :slot]
        self._mask[target_rows] = self._mask[source_rows]
        self._indirection[target] = self._indirection[source]
        for memory in self._memory.values():
            memory[target] = memory[source]
        self._source_mask[target] = self._source_mask[source]
        placed = physical.copy()
        placed[movers] = target
        self._sentences = count
        return placed

    def _gather_rows(self, rows: np.ndarray) -> None:
        """Any other selection: copy each kept row's keys/values (read through the indirection) to its own row,
        one sentence per row from then on (W = 1)."""
        width, slot = self._width, self._slot
        sentence, beam = self._physical[rows // width], rows % width
        physical = sentence[:, None] * width + self._indirection[sentence, beam, :slot]  # (rows, slot)
        steps = np.arange(slot)[None, :]
        capacity = self._mask.shape[1]
        for name, cache in self._caches.items():
            fresh = np.zeros((len(rows), *cache.shape[1:]), np.float32)
            fresh[:, :, :slot] = cache[physical, :, steps].transpose(0, 2, 1, 3)
            self._caches[name] = fresh
        self._mask = self._mask[self._physical_rows[rows]]
        self._width = 1
        self._indirection = np.zeros((len(rows), 1, capacity), np.int32)
        self._memory = {name: m[sentence] for name, m in self._memory.items()}
        self._source_mask = self._source_mask[sentence]
        self._sentences = len(rows)
        self._physical = np.arange(len(rows))
        self._bind_rows()

    def _make_room(self) -> None:
        """Before a step: shift over the dead slots once they are half of the written ones, and double the
        capacity when the write slot reaches it (see the module docstring)."""
        slot, capacity = self._slot, self._mask.shape[1]
        dead = int(self.mask[:, : slot + 1].argmax(axis=1).min()) if slot else 0  # every row owns the write slot
        if dead and (2 * dead >= slot or slot == capacity):
            self._shift(dead)
        elif slot == capacity:
            self._grow()

    def _shift(self, dead: int) -> None:
        """Move the written slots after the first `dead` ones to the front, in the bound arrays."""
        rows, sentences, written = self.rows, self._sentences, self._slot - dead
        for cache in self._caches.values():
            cache[:rows, :, :written] = cache[:rows, :, dead : self._slot]
        self._mask[:rows, :written] = self._mask[:rows, dead : self._slot]
        self._mask[:rows, written:] = 1
        self._indirection[:sentences, :, :written] = self._indirection[:sentences, :, dead : self._slot]
        self._indirection[:sentences, :, written:] = np.arange(self._width, dtype=np.int32)[None, :, None]
        self._slot = written

    def _grow(self) -> None:
        """Double the capacity (one copy of the caches, the masks and the indirection)."""
        capacity = 2 * self._mask.shape[1]
        for name, cache in self._caches.items():
            grown = np.zeros((*cache.shape[:2], capacity, cache.shape[3]), np.float32)
            grown[:, :, : self._slot] = cache[:, :, : self._slot]
            self._caches[name] = grown
        self._mask = np.pad(self._mask, ((0, 0), (0, capacity - self._mask.shape[1])), constant_values=1)
        sentences, extra = len(self._indirection), capacity - self._indirection.shape[2]
        self._indirection = np.concatenate([self._indirection, _own_beams(sentences, self._width, extra)], axis=2)
        self._bind_rows()


def _own_beams(sentences: int, width: int, slots: int) -> np.ndarray:
    """A cache indirection where every row reads its own keys/values: (sentences, width, slots)."""
    return np.tile(np.arange(width, dtype=np.int32)[None, :, None], (sentences, 1, slots))


def _distinct(sentences: np.ndarray) -> bool:
    """Whether no sentence appears twice (sentences that stay keep their order: checked first, cheaply)."""
    return bool((sentences[1:] > sentences[:-1]).all()) or len(np.unique(sentences)) == len(sentences)


def _rows_of(sentences: np.ndarray, width: int) -> np.ndarray:
    """The rows of these physical sentences, W per sentence, in order."""
    return (sentences[:, None] * width + np.arange(width)).reshape(-1)


def _with_room(storage: np.ndarray, needed: int, used: int) -> np.ndarray:
    """`storage` if it has `needed` rows (its first axis), else a copy of its `used` rows with room for twice as
    many."""
    if needed <= len(storage):
        return storage
    grown = np.zeros((max(needed, 2 * len(storage)), *storage.shape[1:]), storage.dtype)
    grown[:used] = storage[:used]
    return grown


def _padded(source: np.ndarray, length: int) -> np.ndarray:
    """Source keys/values (B, H, S, D) or a source mask (B, S) with zeros (masked) up to `length` positions."""
    axis = 2 if source.ndim == 4 else 1
    if source.shape[axis] == length:
        return source
    padding = [(0, 0)] * source.ndim
    padding[axis] = (0, length - source.shape[axis])
    return np.pad(source, padding)
