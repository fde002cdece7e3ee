"""The decoder with onnxruntime IO binding: the self-attention cache stays on the session's device between steps.

On CUDA, feeding numpy arrays copies the whole cache to the GPU and back at every step. Here the memory (the
encoder's keys/values) goes to the device once per batch, each step's `present_*` outputs are bound to the device
and fed back as the next step's `past_*` inputs, and only the log-probabilities and attention come back to the
host. Reordering rows (beams, finished sentences) goes through the host, once per `select`: a gather on the
device would need a graph of its own. The same class runs on CPU (device "cpu"), which is how it is tested on
machines without a GPU.
"""

from __future__ import annotations

import importlib.util
from typing import TypeAlias

import numpy as np
import onnxruntime as ort

from service.decoding.search import OnePositionForAllRows

CUDA = "CUDAExecutionProvider"
_NUMPY_TYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16}

Value: TypeAlias = np.ndarray | ort.OrtValue  # host arrays are bound as they are; onnxruntime copies them in


def load_cuda_libraries() -> None:
    """Load the CUDA and cuDNN libraries of the nvidia-* wheels (the `cuda` extra) before the first CUDA session;
    without them (a CUDA image with the system's libraries) onnxruntime finds its libraries itself."""
    if importlib.util.find_spec("nvidia") is not None and hasattr(ort, "preload_dlls"):
        ort.preload_dlls()


def session_device(session: ort.InferenceSession) -> tuple[str, int]:
    """The device type and id that the session's first provider computes on: ("cuda", id) or ("cpu", 0)."""
    provider = session.get_providers()[0]
    if provider == CUDA:
        return "cuda", int(session.get_provider_options()[CUDA].get("device_id", 0))
    return "cpu", 0


class IoBoundDecoder(OnePositionForAllRows):
    """The decoder session over one encoded batch, its caches bound on the session's device (rows: sentences x
    beams); the same interface and results as engine.OnnxIncrementalDecoder."""

    def __init__(
        self,
        session: ort.InferenceSession,
        memory: dict[str, np.ndarray],
        source_mask: np.ndarray,
        rows_per_sentence: int | np.ndarray,
        fetch_attention: bool,
    ):
        self._session = session
        self._device = session_device(session)
        self._memory = memory  # one row per sentence, on the host: name -> (B, H, S, D)
        self._source_mask = source_mask  # (B, S), True on real tokens
        self._sentence = np.repeat(np.arange(len(source_mask)), rows_per_sentence)  # sentence of each row
        self._memory_values = self._rows_of_sentences()
        self._present = [o.name for o in session.get_outputs() if o.name.startswith("present_")]
        self._host_outputs = ["log_probs", *(["attention"] if fetch_attention else [])]
        types = {i.name: i.type for i in session.get_inputs()}
        _, heads, _, head_size = next(iter(memory.values())).shape
        self._past: dict[str, Value] = {
            name.replace("present_", "past_"): np.zeros(
                (len(self._sentence), heads, 0, head_size), _NUMPY_TYPES[types[name.replace("present_", "past_")]]
            )
            for name in self._present
        }

    def _to_device(self, array: np.ndarray) -> ort.OrtValue:
        return ort.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(array), *self._device)

    def _take(self, value: Value, rows: np.ndarray) -> Value:
        """These rows of a cache, where the cache is (a host array before the first step)."""
        return value[rows] if isinstance(value, np.ndarray) else self._to_device(value.numpy()[rows])

    def _rows_of_sentences(self) -> dict[str, ort.OrtValue]:
        """Memory and source mask repeated for each row of the search, on the device."""
        values = {name: self._to_device(m[self._sentence]) for name, m in self._memory.items()}
        values["source_mask"] = self._to_device(self._source_mask[self._sentence])
        return values

    def step(self, tokens: np.ndarray, position: int) -> tuple[np.ndarray, np.ndarray | None]:
        binding = self._session.io_binding()
        binding.bind_cpu_input("token", tokens.astype(np.int64)[:, None])
        binding.bind_cpu_input("position", np.array(position, dtype=np.int64))
        for name, value in {**self._memory_values, **self._past}.items():
            if isinstance(value, np.ndarray):
                binding.bind_cpu_input(name, value)
            else:
                binding.bind_ortvalue_input(name, value)
        for name in self._host_outputs:
            binding.bind_output(name, "cpu")
        for name in self._present:
            binding.bind_output(name, *self._device)
        self._session.run_with_iobinding(binding)
        outputs = binding.get_outputs()  # in the order bound: host outputs, then the caches
        host = [value.numpy() for value in outputs[: len(self._host_outputs)]]
        self._past = dict(zip(self._past, outputs[len(self._host_outputs) :], strict=True))
        return host[0], host[1] if len(host) > 1 else None

    def select(self, rows: np.ndarray) -> None:
        self._past = {name: self._take(cache, rows) for name, cache in self._past.items()}
        sentence = self._sentence[rows]
        if not np.array_equal(sentence, self._sentence):  # beams reordered within a sentence share memory
            self._sentence = sentence
            self._memory_values = self._rows_of_sentences()
