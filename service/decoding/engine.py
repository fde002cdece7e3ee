"""The translation engine: an exported model directory run by onnxruntime, searched by service/decoding/search.py.

The encoder runs once per batch and returns the cross-attention keys/values of every decoder layer; the
decoder then runs one step per target position, through one of two graphs: "inplace"
(service/decoding/inplace.py: a preallocated cache written in place, beams reordered by index, top-k
candidates) or "concat" (the cache grows by concatenation, every word's log-probability), the fallback every
model directory has. Where the variant has the in-place graph and the provider is the CPU, the engine runs
"auto": the in-place graph for batches with beam search (measured 1.25x at 32 sentences x beam 4) and the
concatenating one for greedy batches (in-place measured 0.8-0.9x at 32 greedy sentences, equal at 1). All sessions of
the process share one global onnxruntime thread pool (separate spinning pools fight over the cores).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnxruntime as ort
import sentencepiece as spm

from service.attention.detail import INPUTS as EXPLAIN_INPUTS
from service.attention.detail import OUTPUTS as EXPLAIN_OUTPUTS
from service.attention.detail import AttentionDetail, Explainer
from service.decoding.inplace import NGRAM_MARGIN, InPlaceDecoder
from service.decoding.int8 import EXACT_INT8_PRODUCTS, this_cpu_needs_exact_int8_products
from service.decoding.iobinding import CUDA, IoBoundDecoder, load_cuda_libraries
from service.decoding.length_groups import length_groups
from service.decoding.manifest import Manifest, ModelLoadError, read_manifest
from service.decoding.repeat_guard import PieceWords, WordRepeatGuard
from service.decoding.search import (
    BeamSearch,
    GreedySearch,
    OnePositionForAllRows,
    SearchResult,
    StepSearch,
    run_search,
)
from service.decoding.shortlist import Shortlist, ShortlistProjection
from service.types import DecodeOptions, Hypothesis, StageTimings, Translation

__all__ = ["Engine", "ModelLoadError", "OnnxIncrementalDecoder"]

INTERFACES = ("auto", "inplace", "concat")

log = logging.getLogger(__name__)

CPU = "CPUExecutionProvider"
DEFAULT_OPTIONS = DecodeOptions()
INPLACE_INPUTS = (
    "token",
    "position",
    "past_sequence_length",
    "self_mask",
    "beam_width",
    "cache_indirection",
    "source_mask",
    "top_k",
)
_NUMPY_TYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16}
_global_pool_threads: int | None = None  # intra-op threads of the process-wide pool, once created


# What a word outside the shortlist gets: below any log-probability, and distinct for every id. Not -inf: numpy's
# argpartition, which beam search uses to take each row's best tokens, slows down ~25x on thousands of equal values
# (measured: 3.8 ms instead of 0.15 ms for 4 rows of 8,000 with 580 candidates). pad and bos stay -inf (forbidden).
UNSCORED = -1e30


def _unscored(vocab_size: int) -> np.ndarray:
    return (UNSCORED * (1 + np.arange(vocab_size, dtype=np.float64) / vocab_size)).astype(np.float32)


class OnnxIncrementalDecoder(OnePositionForAllRows):
    """The decoder session over one encoded batch, with its key/value cache (rows: sentences x beams).

    `rows_per_sentence` is one count for all sentences, or one per sentence (sentences searched with
    different beam sizes share the decoder calls). With `vocabulary` (sorted target ids; the session is a
    shortlist decoder, `projection` its restricted output projection) only those ids are scored; the others
    get UNSCORED."""

    def __init__(
        self,
        session: ort.InferenceSession,
        memory: dict[str, np.ndarray],
        source_mask: np.ndarray,
        rows_per_sentence: int | np.ndarray,
        fetch_attention: bool,
        vocabulary: np.ndarray | None = None,
        projection: dict[str, np.ndarray] | None = None,
        vocab_size: int = 0,
    ):
        self._session = session
        self._vocabulary, self._projection = vocabulary, projection or {}
        self._unscored = _unscored(vocab_size) if vocabulary is not None else None
        self._memory = memory  # one row per sentence: name -> (B, H, S, D)
        self._source_mask = source_mask  # (B, S), True on real tokens
        self._sentence = np.repeat(np.arange(len(source_mask)), rows_per_sentence)  # sentence of each row
        self._memory_feeds = self._rows_of_sentences()
        present = [o.name for o in session.get_outputs() if o.name.startswith("present_")]
        self._outputs = ["log_probs", *present, *(["attention"] if fetch_attention else [])]
        self._past = {name.replace("present_", "past_"): self._empty_cache(name) for name in present}

    def _empty_cache(self, present_name: str) -> np.ndarray:
        """A cache of length 0 for the first step, shaped and typed like the cross-attention memory."""
        _, heads, _, head_size = next(iter(self._memory.values())).shape
        dtype = _NUMPY_TYPES[_input_types(self._session)[present_name.replace("present_", "past_")]]
        return np.zeros((len(self._sentence), heads, 0, head_size), dtype=dtype)

    def _rows_of_sentences(self) -> dict[str, np.ndarray]:
        """Memory and source mask repeated for each row of the search."""
        feeds = {name: m[self._sentence] for name, m in self._memory.items()}
        feeds["source_mask"] = self._source_mask[self._sentence]
        return feeds

    def step(self, tokens: np.ndarray, position: int) -> tuple[np.ndarray, np.ndarray | None]:
        feeds = {
            "token": tokens.astype(np.int64)[:, None],
            "position": np.array(position, dtype=np.int64),
            **self._memory_feeds,
            **self._past,
        }
        feeds.update(self._projection)
        outputs = self._session.run(self._outputs, feeds)
        self._past = dict(zip(self._past, outputs[1 : 1 + len(self._past)], strict=True))
        attention = outputs[-1] if self._outputs[-1] == "attention" else None
        return self._full_vocabulary(outputs[0]), attention

    def _full_vocabulary(self, log_probs: np.ndarray) -> np.ndarray:
        """Shortlisted log-probabilities (N, V') put at their vocabulary ids (N, V), UNSCORED elsewhere."""
        if self._vocabulary is None or self._unscored is None:
            return log_probs
        full = np.tile(self._unscored, (len(log_probs), 1))
        full[:, self._vocabulary] = log_probs
        return full

    def select(self, rows: np.ndarray) -> None:
        self._past = {name: cache[rows] for name, cache in self._past.items()}
        sentence = self._sentence[rows]
        if not np.array_equal(sentence, self._sentence):  # beams reordered within a sentence share memory
            self._sentence = sentence
            self._memory_feeds = self._rows_of_sentences()


class Engine:
    """Translates text with one exported model directory; calls from several threads may overlap."""

    def __init__(
        self,
        manifest: Manifest,
        variant: str,
        encoder: ort.InferenceSession,
        decoders: dict[str, ort.InferenceSession],
        tokenizer: spm.SentencePieceProcessor,
        explainer: Explainer | None = None,
        io_binding: bool | None = None,
        shortlist: ShortlistProjection | None = None,
    ):
        """`decoders`: the decoder session of each interface it runs ("inplace", "concat", or both: "auto").
        `io_binding`: keep the decoder's caches on the device between steps (IoBoundDecoder); default: on CUDA."""
        self._manifest = manifest
        self._variant = variant
        self._encoder = encoder
        self._decoders = decoders
        self._tokenizer = tokenizer
        self._explainer = explainer
        self._io_binding = self.provider == CUDA if io_binding is None else io_binding
        self._shortlist = shortlist
        self._piece_words = _piece_words(tokenizer)
        self._check_graphs()

    @classmethod
    def load(
        cls,
        model_dir: Path,
        providers: Sequence[str] = (CPU,),
        intra_op_threads: int = 0,
        variant: str | None = None,
        interface: str | None = None,
        io_binding: bool | None = None,
        shortlist: bool | None = None,
    ) -> Engine:
        """Check a model directory (manifest, sha256 of every file) and open its sessions on `providers`.

        `interface` ("auto", "inplace" or "concat") overrides the decoder graphs chosen from the manifest. `shortlist`:
        score only the lexical shortlist's candidates (True), every word (False), or as the manifest says (None:
        its shortlist where enabled and the variant has a shortlist decoder); the shortlist runs on the
        concatenating graph ("concat")."""
        model_dir = Path(model_dir)
        manifest = read_manifest(model_dir)
        usable = _usable_providers(providers)
        if CUDA in usable:
            load_cuda_libraries()
        variant = variant or manifest.variant_for(usable[0])
        if variant not in manifest.variants:
            raise ModelLoadError(f"{model_dir} has no variant {variant!r} (it has {', '.join(manifest.variants)})")
        files = manifest.variants[variant]
        lexical = _shortlist_of(model_dir, manifest, variant, shortlist, usable, intra_op_threads)
        has_step = files.step_decoder and not lexical and usable[0] == CPU
        interface = _interface("auto" if has_step else "concat", interface, model_dir, variant)
        encoder = open_session(model_dir / files.encoder, usable, intra_op_threads)
        concat_file = manifest.shortlist.decoders[variant] if lexical and manifest.shortlist else files.decoder
        decoder_files = {"inplace": files.step_decoder, "concat": concat_file}
        decoders = {
            name: open_session(model_dir / decoder_files[name], usable, intra_op_threads)
            for name in (("inplace", "concat") if interface == "auto" else (interface,))
        }
        tokenizer = spm.SentencePieceProcessor(model_file=str(model_dir / manifest.tokenizer))
        explainer = (
            Explainer(open_session(model_dir / manifest.explain, usable, intra_op_threads))
            if manifest.explain
            else None
        )
        engine = cls(manifest, variant, encoder, decoders, tokenizer, explainer, io_binding, lexical)
        if engine.provider != providers[0]:
            log.warning(
                "asked for %s but this machine's onnxruntime offers %s: running %s on %s",
                providers[0],
                ", ".join(ort.get_available_providers()),
                manifest.name,
                engine.provider,
            )
        log.debug("loaded %s %s (%s) on %s", manifest.name, manifest.version, variant, engine.provider)
        return engine

    @property
    def manifest(self) -> Manifest:
        return self._manifest

    @property
    def variant(self) -> str:
        return self._variant

    @property
    def interface(self) -> str:
        """The decoder graphs this engine runs: "inplace", "concat", or "auto" (in-place for beam search)."""
        return "auto" if len(self._decoders) > 1 else next(iter(self._decoders))

    @property
    def shortlisted(self) -> bool:
        """Whether the decoder scores only the lexical shortlist's candidates of each batch."""
        return self._shortlist is not None

    @property
    def provider(self) -> str:
        """The execution provider really running the decoder (after any fallback)."""
        return str(next(iter(self._decoders.values())).get_providers()[0])

    @property
    def explains(self) -> bool:
        """Whether the model directory has the attention-detail graph (DecodeOptions.attention_detail)."""
        return self._explainer is not None

    @property
    def max_source_tokens(self) -> int:
        """The most tokens the encoder takes, counted like `count_tokens` (eos included)."""
        return self._manifest.max_positions

    def tokenize(self, text: str) -> list[str]:
        """The subword tokens the encoder sees for `text`: its pieces then "</s>"; [] for a text without any."""
        return self._pieces(self._source_ids(text, check_length=False))

    def count_tokens(self, text: str) -> int:
        """How many tokens the encoder sees for `text`, eos included; 0 for a text without tokens."""
        return len(self._source_ids(text, check_length=False))

    def translate(self, texts: Sequence[str], options: DecodeOptions) -> list[Translation]:
        """Translate a batch; results in input order. Empty text -> empty result.

        Each result is the one the text gets alone, but for int8: it quantizes activations over the whole
        batch, so its scores, and now and then its tokens, depend on the other texts of the batch.
        """
        _check_options(options)
        if options.attention_detail and self._explainer is None:
            raise ValueError(f"{self._manifest.name} has no attention-detail graph: export it again to get one")
        started = time.perf_counter()
        sources = [self._source_ids(text) for text in texts]
        nonempty = [i for i, source in enumerate(sources) if source]
        tokenized = encoded = time.perf_counter()
        found: list[list[SearchResult]] = []
        if nonempty:
            batch = [sources[i] for i in nonempty]
            decoder = self.encode(batch, options.beam_size, options.return_attention)
            encoded = time.perf_counter()
            found = run_search(decoder, self.new_search(batch, options), len(batch))
        decoded = time.perf_counter()
        results = dict(zip(nonempty, found, strict=True))
        translations = [self.translation(sources[i], results.get(i, []), options) for i in range(len(texts))]
        timings = StageTimings(
            tokenize=tokenized - started + time.perf_counter() - decoded,
            encode=encoded - tokenized,
            decode=decoded - encoded,
        )
        return [replace(t, timings=replace(timings)) for t in translations]

    def source_ids(self, text: str) -> list[int]:
        """Token ids the encoder sees for `text` (its subwords then eos); ValueError if it is too long."""
        return self._source_ids(text)

    def _source_ids(self, text: str, check_length: bool = True) -> list[int]:
        """Token ids the encoder sees: the text's subwords then eos; [] for a text without tokens."""
        pieces = [int(i) for i in self._tokenizer.encode(text)]
        ids = [*pieces, self._manifest.special_ids.eos] if pieces else []
        if check_length and len(ids) > self.max_source_tokens:
            raise ValueError(f"text has {len(ids)} tokens with eos; this model takes at most {self.max_source_tokens}")
        return ids

    def encode(
        self, sources: Sequence[Sequence[int]], beam_size: int | np.ndarray = 1, return_attention: bool = False
    ) -> OnnxIncrementalDecoder | IoBoundDecoder | InPlaceDecoder:
        """Run the encoder on token-id sequences (each ending with eos) and return the decoder over them,
        with `beam_size` rows per sentence, or one count per sentence (the encoder runs once per sentence,
        not per beam)."""
        pad, lengths = self._manifest.special_ids.pad, [len(s) for s in sources]
        ids = _padded(sources, pad)
        memory = self._memory(ids, lengths)
        if self._runs_inplace(beam_size):
            capacity = int(self.max_lengths(lengths, DEFAULT_OPTIONS).max())
            top_k = min(2 * int(np.max(beam_size)) + NGRAM_MARGIN, self._manifest.vocab_size)
            return InPlaceDecoder(self._decoders["inplace"], memory, ids != pad, beam_size, capacity, top_k)
        if self._shortlist is not None:
            vocabulary = self._shortlist.candidates(sources)
            projection = self._shortlist.restricted_projection(vocabulary)
            return OnnxIncrementalDecoder(
                self._decoders["concat"],
                memory,
                ids != pad,
                beam_size,
                return_attention,
                vocabulary,
                projection,
                self._manifest.vocab_size,
            )
        decoder = IoBoundDecoder if self._io_binding else OnnxIncrementalDecoder
        return decoder(self._decoders["concat"], memory, ids != pad, beam_size, return_attention)

    def _memory(self, ids: np.ndarray, lengths: Sequence[int]) -> dict[str, np.ndarray]:
        """The encoder's output for each row of `ids` (B, S), name -> (B, H, S, D), zero past each length. On the
        CPU the rows are encoded in groups of similar length (service/decoding/length_groups.py)."""
        names = [o.name for o in self._encoder.get_outputs()]
        groups = length_groups(lengths) if self.provider == CPU else [np.arange(len(lengths))]  # a GPU: one call
        memory: dict[str, np.ndarray] = {}
        for group in groups:
            longest = max(lengths[int(i)] for i in group)
            outputs = self._encoder.run(names, {"source_ids": ids[group, :longest]})
            for name, output in zip(names, outputs, strict=True):
                if name not in memory:
                    _, heads, _, head_size = output.shape
                    memory[name] = np.zeros((len(ids), heads, ids.shape[1], head_size), output.dtype)
                memory[name][group, :, :longest] = output
        return memory

    def _runs_inplace(self, beam_size: int | np.ndarray) -> bool:
        """Whether a batch with these beam sizes runs the in-place graph ("auto": when it searches with beams)."""
        widest = beam_size if isinstance(beam_size, int) else int(np.max(beam_size))
        return "inplace" in self._decoders and ("concat" not in self._decoders or widest > 1)

    def merges(self, beam_size: int) -> bool:
        """Whether batches searched with this beam size get caches that can merge (the in-place graph's)."""
        return self._runs_inplace(beam_size)

    def new_search(self, sources: list[list[int]], options: DecodeOptions) -> StepSearch:
        """The step-wise search of `options` over these sentences (their decoder rows sentence-major)."""
        _check_options(options)
        ids, lengths = self._manifest.special_ids, self.max_lengths([len(s) for s in sources], options)
        if options.beam_size == 1:
            return GreedySearch(
                lengths,
                ids.bos,
                ids.eos,
                options.length_penalty,
                options.return_attention,
                never=(ids.pad,),
                repeat_guard=self._repeat_guard(options),
            )
        return BeamSearch(
            lengths,
            ids.bos,
            ids.eos,
            options.beam_size,
            options.n_best,
            options.length_penalty,
            options.return_attention,
            never=(ids.pad,),
            repeat_guard=self._repeat_guard(options),
        )

    def _repeat_guard(self, options: DecodeOptions) -> WordRepeatGuard | None:
        """A fresh guard for one search (it keeps each row's words between steps); None when the option is 0."""
        size = options.no_repeat_ngram_size
        return WordRepeatGuard(self._piece_words, size) if size else None

    def max_lengths(self, source_tokens: Sequence[int], options: DecodeOptions) -> np.ndarray:
        """Steps allowed per sentence of these source token counts (eos included): the option's cap, else
        a * source tokens + b; never over the model's positions."""
        if options.max_length is not None:
            lengths = np.full(len(source_tokens), options.max_length)
        else:
            a, b = self._manifest.max_length_a, self._manifest.max_length_b
            lengths = np.array([int(a * n + b) for n in source_tokens], dtype=np.int64)
        return np.minimum(lengths, self._manifest.max_positions)

    def translation(self, source: list[int], found: list[SearchResult], options: DecodeOptions) -> Translation:
        """Strings, trimmed attention and, if asked, the attention detail of one sentence; `found` is empty when
        the source was."""
        source_tokens = self._pieces(source)
        if not source:
            empty = np.zeros((0, 0), dtype=np.float32) if options.return_attention else None
            return Translation(source_tokens, [Hypothesis("", [], [], 0.0, empty)])
        hypotheses = [
            Hypothesis(
                text=self._tokenizer.decode(r.token_ids),
                token_ids=r.token_ids,
                tokens=self._pieces(r.token_ids),
                score=r.score,
                attention=None if r.attention is None else _trimmed(r.attention, len(r.token_ids), len(source)),
                truncated=r.truncated,
            )
            for r in found
        ]
        translation = Translation(source_tokens, hypotheses)
        return (
            replace(translation, detail=self._detail(source, translation)) if options.attention_detail else translation
        )

    def _detail(self, source: list[int], translation: Translation) -> AttentionDetail | None:
        """Every layer's and head's attention of the best hypothesis; None for an empty source."""
        if not source or self._explainer is None:
            return None
        target = [self._manifest.special_ids.bos, *translation.best.token_ids]
        return self._explainer.explain(source, target, self._pieces(source), self._pieces(target))

    def _pieces(self, ids: list[int]) -> list[str]:
        return [str(self._tokenizer.id_to_piece(i)) for i in ids]

    def _check_graphs(self) -> None:
        """The graphs must have the inputs and outputs the engine feeds and fetches."""
        caches = [f"{kind}_{i}" for i in range(self._manifest.decoder_layers) for kind in ("key", "value")]
        wanted = {
            "encoder input": ({"source_ids"}, _input_types(self._encoder)),
            "encoder output": ({f"memory_{c}" for c in caches}, {o.name for o in self._encoder.get_outputs()}),
        }
        for name, decoder in self._decoders.items():
            inplace = name == "inplace"
            step_inputs = INPLACE_INPUTS if inplace else ("token", "position", "source_mask")
            cache = "cache" if inplace else "past"
            projection = self._shortlist.projection_outputs if self._shortlist is not None and not inplace else set()
            wanted[f"{name} decoder input"] = (
                {*step_inputs, *(f"memory_{c}" for c in caches), *(f"{cache}_{c}" for c in caches)} | projection,
                _input_types(decoder),
            )
            wanted[f"{name} decoder output"] = (
                {"log_probs", "attention", *(["token_ids"] if inplace else []), *(f"present_{c}" for c in caches)},
                {o.name for o in decoder.get_outputs()},
            )
        if self._explainer is not None:
            session = self._explainer.session
            wanted["attention-detail graph input"] = (set(EXPLAIN_INPUTS), _input_types(session))
            wanted["attention-detail graph output"] = (set(EXPLAIN_OUTPUTS), {o.name for o in session.get_outputs()})
        for what, (names, present) in wanted.items():
            missing = sorted(set(names) - set(present))
            if missing:
                raise ModelLoadError(f"{self._manifest.name}: {what}s {', '.join(missing)} are missing")


def _interface(chosen: str, asked: str | None, model_dir: Path, variant: str) -> str:
    """The decoder interface to run: `asked` where given (it must exist), else the manifest's `chosen`."""
    if asked is None:
        return chosen
    if asked not in INTERFACES:
        raise ValueError(f"decoder interface must be one of {', '.join(INTERFACES)}, not {asked!r}")
    if asked != "concat" and chosen == "concat":
        raise ModelLoadError(
            f"{model_dir} variant {variant!r} has no in-place step graph for this provider (nor with the shortlist)"
        )
    return asked


def _shortlist_of(
    model_dir: Path,
    manifest: Manifest,
    variant: str,
    wanted: bool | None,
    providers: list[str],
    intra_op_threads: int,
) -> ShortlistProjection | None:
    """The lexical shortlist to run `variant` with (see Engine.load), or None to score every word."""
    files = manifest.shortlist
    usable = files is not None and variant in files.decoders and variant in files.projections
    if wanted is False or (wanted is None and not (usable and files is not None and files.enabled)):
        return None
    if files is None or not usable:
        has = "no shortlist" if files is None else f"no shortlist graphs for variant {variant!r}"
        raise ModelLoadError(f"{model_dir} has {has}: add one with python -m model.shortlist")
    ids = manifest.special_ids
    shortlist = Shortlist.load(model_dir / files.file, manifest.vocab_size, required=(ids.eos, ids.unk))
    session = open_session(model_dir / files.projections[variant], providers, intra_op_threads)
    return ShortlistProjection(shortlist, session)


def _piece_words(tokenizer: spm.SentencePieceProcessor) -> PieceWords:
    """The tokenizer's pieces for the repeat guard; control, unknown and byte pieces have no text."""
    ids = range(tokenizer.get_piece_size())
    special = {i for i in ids if tokenizer.is_control(i) or tokenizer.is_unknown(i) or tokenizer.is_byte(i)}
    return PieceWords.of([tokenizer.id_to_piece(i) for i in ids], special)


def _padded(sources: Sequence[Sequence[int]], pad: int) -> np.ndarray:
    """Token-id sequences as one (B, longest) array, `pad` after each sequence's end."""
    ids = np.full((len(sources), max(map(len, sources))), pad, dtype=np.int64)
    for row, source in enumerate(sources):
        ids[row, : len(source)] = source
    return ids


def _trimmed(attention: np.ndarray, target_length: int, source_length: int) -> np.ndarray:
    """Attention (target tokens x source tokens incl. eos) without the padding columns."""
    return np.ascontiguousarray(attention[:target_length, :source_length], dtype=np.float32)


def _check_options(options: DecodeOptions) -> None:
    if options.beam_size < 1:
        raise ValueError(f"beam_size must be at least 1, not {options.beam_size}")
    if not 1 <= options.n_best <= options.beam_size:
        raise ValueError(f"n_best must be between 1 and beam_size ({options.beam_size}), not {options.n_best}")
    if options.max_length is not None and options.max_length < 1:
        raise ValueError(f"max_length must be at least 1, not {options.max_length}")


def _input_types(session: ort.InferenceSession) -> dict[str, str]:
    return {i.name: i.type for i in session.get_inputs()}


def _usable_providers(requested: Sequence[str]) -> list[str]:
    """The requested providers this onnxruntime build has, CPU always last as the fallback."""
    if not requested:
        raise ValueError("no execution provider requested")
    available = set(ort.get_available_providers())
    usable = [p for p in requested if p in available]
    return usable if CPU in usable else [*usable, CPU]


def _use_global_thread_pool(intra_op_threads: int) -> None:
    """Create the process-wide thread pool once; later engines share it whatever they ask for."""
    global _global_pool_threads
    if _global_pool_threads is None:
        try:
            ort.set_global_thread_pool_sizes(intra_op_threads, 1)
        except Exception as exc:  # created before, outside this module: share it as it is
            log.warning("could not size the global thread pool: %s", exc)
        _global_pool_threads = intra_op_threads
    elif intra_op_threads != _global_pool_threads:
        log.warning(
            "the global thread pool already has intra_op_threads=%d; ignoring %d",
            _global_pool_threads,
            intra_op_threads,
        )


def open_session(path: Path, providers: list[str], intra_op_threads: int = 0) -> ort.InferenceSession:
    """An onnxruntime session as the engine runs it: global thread pool, every optimization, exact int8 products
    (service/decoding/int8.py)."""
    _use_global_thread_pool(intra_op_threads)
    options = ort.SessionOptions()
    options.use_per_session_threads = False  # the global pool
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if this_cpu_needs_exact_int8_products():
        options.add_session_config_entry(EXACT_INT8_PRODUCTS, "1")
    try:
        return ort.InferenceSession(str(path), options, providers=providers)
    except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph types and RuntimeError
        raise ModelLoadError(f"{path} could not be loaded by onnxruntime: {exc}") from exc
