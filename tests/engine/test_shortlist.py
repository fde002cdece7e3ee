"""The lexical shortlist: decoding over a batch's candidate words, mapped back to full-vocabulary ids."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from model.shortlist import add_shortlist, build_shortlist
from model.shortlist import main as shortlist_main
from service.decoding.engine import UNSCORED, Engine, ModelLoadError
from service.decoding.manifest import read_manifest, sha256_file
from service.decoding.shortlist import SHORTLIST_FILE, Shortlist
from service.types import DecodeOptions
from tests.support.tiny import sentence_pairs, source_sentences

TEXTS = source_sentences(12, seed=3)


def _with_shortlist(tiny_model_dir: Path, directory: Path, shortlist: Shortlist, enabled: bool = False) -> Path:
    """A copy of the tiny model directory with `shortlist` and its graphs added."""
    shutil.copytree(tiny_model_dir, directory)
    add_shortlist(directory, shortlist, enabled, {"test": True}, read_manifest(directory))
    return directory


def _every_word(vocab_size: int) -> Shortlist:
    return Shortlist.from_lists([[] for _ in range(vocab_size)], always=range(vocab_size))


@pytest.fixture(scope="module")
def every_word_dir(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    vocab_size = read_manifest(tiny_model_dir).vocab_size
    return _with_shortlist(tiny_model_dir, tmp_path_factory.mktemp("every") / "en-fr", _every_word(vocab_size))


@pytest.fixture(scope="module")
def few_words(tiny_model_dir: Path) -> tuple[Shortlist, int]:
    """A shortlist of a few words per source id (ids 4 and up; the special ids, pad and bos included, always),
    and the vocabulary size."""
    vocab_size = read_manifest(tiny_model_dir).vocab_size
    rng = np.random.default_rng(0)
    per_source = [sorted(rng.choice(np.arange(4, vocab_size), 3, replace=False).tolist()) for _ in range(vocab_size)]
    return Shortlist.from_lists(per_source, always=[0, 1, 2, 3]), vocab_size


@pytest.fixture(scope="module")
def few_words_dir(
    tiny_model_dir: Path, few_words: tuple[Shortlist, int], tmp_path_factory: pytest.TempPathFactory
) -> Path:
    return _with_shortlist(tiny_model_dir, tmp_path_factory.mktemp("few") / "en-fr", few_words[0], enabled=True)


@pytest.mark.parametrize("beam_size", [1, 4])
def test_every_word_shortlist_decodes_like_the_full_vocabulary(every_word_dir: Path, beam_size: int) -> None:
    full = Engine.load(every_word_dir, intra_op_threads=1, variant="fp32", shortlist=False)
    shortlisted = Engine.load(every_word_dir, intra_op_threads=1, variant="fp32", shortlist=True)
    assert shortlisted.shortlisted and not full.shortlisted
    options = DecodeOptions(beam_size=beam_size, n_best=beam_size)
    expected, found = full.translate(TEXTS, options), shortlisted.translate(TEXTS, options)
    for want, got in zip(expected, found, strict=True):
        assert [h.token_ids for h in got.hypotheses] == [h.token_ids for h in want.hypotheses]
        np.testing.assert_allclose([h.score for h in got.hypotheses], [h.score for h in want.hypotheses], atol=1e-4)


@pytest.mark.parametrize("variant", ["fp32", "int8", "fp16"])
def test_step_scores_only_candidates_at_their_vocabulary_ids(
    few_words_dir: Path, few_words: tuple[Shortlist, int], variant: str
) -> None:
    """Each candidate's log-probability is the full model's renormalized over the candidates; the others are
    below any log-probability (and distinct)."""
    shortlist, vocab_size = few_words
    full = Engine.load(few_words_dir, intra_op_threads=1, variant=variant, shortlist=False, interface="concat")
    shortlisted = Engine.load(few_words_dir, intra_op_threads=1, variant=variant)
    sources = [shortlisted.source_ids(text) for text in TEXTS[:3]]
    candidates = shortlist.candidates(sources)
    tokens = np.full(len(sources), 2)
    got = shortlisted.encode(sources).step(tokens, 0)[0]
    want = full.encode(sources).step(tokens, 0)[0][:, candidates]
    assert got.shape == (len(sources), vocab_size)
    others = np.setdiff1d(np.arange(vocab_size), candidates)
    assert np.all(got[:, others] <= UNSCORED) and len(np.unique(got[0, others])) == len(others)
    renormalized = want - np.logaddexp.reduce(want, axis=1, keepdims=True)
    tolerance = 1e-2 if variant == "fp16" else 1e-4  # fp16 products, fp16 log-probabilities
    np.testing.assert_allclose(got[:, candidates], renormalized, atol=tolerance)


@pytest.mark.parametrize("beam_size", [1, 4])
def test_translations_use_only_candidates_and_never_pad_or_bos(
    few_words_dir: Path, few_words: tuple[Shortlist, int], beam_size: int
) -> None:
    shortlist, _ = few_words
    engine = Engine.load(few_words_dir, intra_op_threads=1, variant="int8")
    assert engine.shortlisted  # enabled in the manifest
    allowed = set(shortlist.candidates([engine.source_ids(text) for text in TEXTS]).tolist())  # the batch's
    options = DecodeOptions(beam_size=beam_size, n_best=beam_size)
    for translation in engine.translate(TEXTS, options):
        for hypothesis in translation.hypotheses:
            assert set(hypothesis.token_ids) <= allowed - {0, 2}
            assert np.isfinite(hypothesis.score)


def test_off_by_default_unless_the_manifest_enables_it(every_word_dir: Path) -> None:
    assert not read_manifest(every_word_dir).shortlist.enabled  # type: ignore[union-attr]
    assert not Engine.load(every_word_dir, intra_op_threads=1).shortlisted


def test_asking_for_a_shortlist_the_directory_lacks_fails(tiny_model_dir: Path) -> None:
    with pytest.raises(ModelLoadError, match="has no shortlist: add one with python -m model.shortlist"):
        Engine.load(tiny_model_dir, intra_op_threads=1, shortlist=True)


def test_missing_shortlist_file_fails_to_load(every_word_dir: Path, tmp_path: Path) -> None:
    copy = shutil.copytree(every_word_dir, tmp_path / "en-fr")
    (copy / SHORTLIST_FILE).unlink()
    with pytest.raises(ModelLoadError, match="shortlist.npz is missing from the model directory"):
        Engine.load(copy, intra_op_threads=1, shortlist=True)


def _replace_shortlist_file(directory: Path, content: bytes) -> None:
    """Write `content` as the shortlist, with its sha256 in the manifest (so only the content is wrong)."""
    (directory / SHORTLIST_FILE).write_bytes(content)
    manifest = json.loads((directory / "manifest.json").read_text())
    manifest["files"][SHORTLIST_FILE] = sha256_file(directory / SHORTLIST_FILE)
    (directory / "manifest.json").write_text(json.dumps(manifest))


def _npz(path: Path, **arrays: np.ndarray) -> bytes:
    np.savez(path, **arrays)
    return path.read_bytes()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (lambda tmp: b"not a numpy archive", "is not a readable .npz file"),
        (lambda tmp: _npz(tmp / "a.npz", offsets=np.zeros(3, np.int64)), "lacks targets, always"),
        (
            lambda tmp: _npz(
                tmp / "b.npz",
                offsets=np.zeros(3, np.int64),
                targets=np.zeros(0, np.int64),
                always=np.zeros(1, np.int64),
            ),
            "offsets has 3 entries",
        ),
        (
            lambda tmp: _npz(
                tmp / "c.npz", offsets=np.zeros(121, np.int64), targets=np.zeros(0, np.int64), always=np.array([999])
            ),
            "always holds ids outside the vocabulary",
        ),
    ],
)
def test_malformed_shortlist_fails_to_load(every_word_dir: Path, tmp_path: Path, content, message: str) -> None:  # type: ignore[no-untyped-def]
    copy = shutil.copytree(every_word_dir, tmp_path / "en-fr")
    _replace_shortlist_file(copy, content(tmp_path))
    with pytest.raises(ModelLoadError, match=message):
        Engine.load(copy, intra_op_threads=1, shortlist=True)


def test_build_ranks_aligned_words_and_adds_frequent_ones() -> None:
    """Source 10 always comes with target 20, and target 30 is in every sentence (frequent, not aligned)."""
    sources = [[10, 11], [10, 12], [11, 12], [13]]
    targets = [[20, 30, 21], [20, 30, 22], [30, 21, 22], [30, 23]]
    shortlist = build_shortlist(sources, targets, vocab_size=40, top_k=1, frequent=1, always=[3])
    assert shortlist.candidates([[10]]).tolist() == [3, 10, 20, 30]  # end of sentence, itself, aligned, frequent
    assert shortlist.candidates([[13]]).tolist() == [3, 13, 23, 30]


def test_command_adds_a_shortlist_from_a_corpus(tiny_model_dir: Path, tmp_path: Path) -> None:
    copy = shutil.copytree(tiny_model_dir, tmp_path / "en-fr")
    pairs = sentence_pairs(300, seed=5)
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "train.en").write_text("\n".join(s for s, _ in pairs) + "\n")
    (corpus / "train.fr").write_text("\n".join(t for _, t in pairs) + "\n")
    args = ["--model-dir", str(copy), "--corpus", str(corpus), "--pair", "en-fr", "--top-k", "3", "--frequent", "2"]
    assert shortlist_main(args) == 0
    shortlist = read_manifest(copy).shortlist
    assert shortlist is not None and set(shortlist.decoders) == {"fp32", "int8", "fp16"}
    engine = Engine.load(copy, intra_op_threads=1, shortlist=True)
    assert all(t.best.token_ids for t in engine.translate(TEXTS, DecodeOptions()))


def test_command_refuses_another_language_pair(tiny_model_dir: Path, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    args = ["--model-dir", str(tiny_model_dir), "--corpus", str(tmp_path), "--pair", "en-de"]
    assert shortlist_main(args) == 2
    assert "does not match the model" in capsys.readouterr().err


def test_dropping_a_variant_drops_its_shortlist_graphs(every_word_dir: Path) -> None:
    manifest = read_manifest(every_word_dir).without_variants(["fp16"])
    assert manifest.shortlist is not None
    assert set(manifest.shortlist.decoders) == set(manifest.shortlist.projections) == {"fp32", "int8"}
    assert not [name for name in manifest.files if "shortlist.fp16" in name]
    assert {"decoder.shortlist.int8.onnx", "projection.shortlist.int8.onnx", SHORTLIST_FILE} <= set(manifest.files)
