"""Reading parallel files, filtering pairs and cutting token-budget batches."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from model.data import (
    CorpusError,
    bucketed_batches,
    collate,
    epoch_batches,
    filter_pairs,
    read_parallel,
)
from model.tokenizer import BOS_ID, EOS_ID, PAD_ID, load_tokenizer, train_tokenizer
from tests.model.corpora import MULTI30K, write_lines
from tests.support.environment import missing


def test_reads_plain_and_gzipped_files(tmp_path: Path) -> None:
    write_lines(tmp_path / "train.en", ["a cat", "two dogs"])
    write_lines(tmp_path / "train.fr.gz", ["un chat", "deux chiens"])
    assert read_parallel(tmp_path, "train", "en", "fr") == (["a cat", "two dogs"], ["un chat", "deux chiens"])


def test_unequal_line_counts_name_both_files(tmp_path: Path) -> None:
    write_lines(tmp_path / "train.en.gz", ["a", "b", "c"])
    write_lines(tmp_path / "train.fr.gz", ["a", "b"])
    with pytest.raises(CorpusError, match=r"train\.fr\.gz has 2 lines but train\.en\.gz has 3"):
        read_parallel(tmp_path, "train", "en", "fr")


def test_empty_file(tmp_path: Path) -> None:
    write_lines(tmp_path / "val.en.gz", ["a"])
    write_lines(tmp_path / "val.fr.gz", [])
    with pytest.raises(CorpusError, match=r"val\.fr\.gz is empty"):
        read_parallel(tmp_path, "val", "en", "fr")


def test_invalid_utf8_names_the_line(tmp_path: Path) -> None:
    write_lines(tmp_path / "val.fr", ["un", "deux", "trois"])
    (tmp_path / "val.en.gz").write_bytes(gzip.compress(b"one\ntwo\nthr\xe9e\n"))
    with pytest.raises(CorpusError, match=r"val\.en\.gz line 3 is not valid UTF-8"):
        read_parallel(tmp_path, "val", "en", "fr")


def test_missing_file_and_missing_directory(tmp_path: Path) -> None:
    write_lines(tmp_path / "test.en.gz", ["a"])
    missing = r"split 'test' not found in .*: test\.de \(or \.gz\) missing, and no test\.tsv"
    with pytest.raises(CorpusError, match=missing):
        read_parallel(tmp_path, "test", "en", "de")
    with pytest.raises(CorpusError, match="does not exist"):
        read_parallel(tmp_path / "nowhere", "test", "en", "de")


def test_reads_a_tsv_split_plain_or_gzipped(tmp_path: Path) -> None:
    write_lines(tmp_path / "train.tsv.gz", ["a cat\tun chat", "two dogs\tdeux chiens"])
    write_lines(tmp_path / "val.tsv", ["one\tun"])
    assert read_parallel(tmp_path, "train", "en", "fr") == (["a cat", "two dogs"], ["un chat", "deux chiens"])
    assert read_parallel(tmp_path, "val", "en", "fr") == (["one"], ["un"])


def test_aligned_files_win_over_a_tsv(tmp_path: Path) -> None:
    write_lines(tmp_path / "train.tsv", ["from\tthe tsv"])
    write_lines(tmp_path / "train.en", ["from"])
    write_lines(tmp_path / "train.fr", ["the aligned files"])
    assert read_parallel(tmp_path, "train", "en", "fr") == (["from"], ["the aligned files"])


def test_a_tsv_line_with_two_tabs_names_the_line(tmp_path: Path) -> None:
    write_lines(tmp_path / "test.tsv", ["a\tb", "c\td\te"])
    with pytest.raises(CorpusError, match=r"test\.tsv line 2 has 3 tab-separated fields"):
        read_parallel(tmp_path, "test", "en", "fr")


def test_corrupt_gzip_is_unreadable(tmp_path: Path) -> None:
    (tmp_path / "train.en.gz").write_bytes(gzip.compress(b"a\nb\n")[:-6])
    write_lines(tmp_path / "train.fr.gz", ["a", "b"])
    with pytest.raises(CorpusError, match=r"train\.en\.gz is unreadable"):
        read_parallel(tmp_path, "train", "en", "fr")


def test_filter_counts_each_reason() -> None:
    src = [[5, 6], [], [5] * 11, [5], [5, 6, 7]]
    tgt = [[7], [8], [9], [5, 6, 7, 8], [8, 9]]
    kept, counts = filter_pairs(src, tgt, max_tokens=10, max_ratio=3.0)
    assert kept == [([5, 6], [7]), ([5, 6, 7], [8, 9])]
    assert (counts.read, counts.kept, counts.empty, counts.too_long, counts.bad_ratio) == (5, 2, 1, 1, 1)


def test_collate_pads_and_frames_the_target() -> None:
    batch = collate([([5, 6], [7]), ([5], [8, 9, 10])], np.array([0, 1]))
    assert batch.src.tolist() == [[5, 6, EOS_ID], [5, EOS_ID, PAD_ID]]
    assert batch.tgt.tolist() == [[BOS_ID, 7, EOS_ID, PAD_ID, PAD_ID], [BOS_ID, 8, 9, 10, EOS_ID]]


def random_lengths(n: int = 3000, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(3, 40, size=n)


def test_batches_respect_the_budget_and_cover_every_pair_once() -> None:
    lengths = random_lengths()
    batches = bucketed_batches(lengths, max_tokens=500, rng=np.random.default_rng(1), chunk_size=1000)
    assert all(len(b) * lengths[b].max() <= 500 for b in batches)
    assert sorted(np.concatenate(batches).tolist()) == list(range(len(lengths)))
    spread = np.mean([lengths[b].max() - lengths[b].min() for b in batches])
    assert spread < 3  # length bucketing: little padding within a batch


def test_epoch_batches_are_repeatable_and_differ_between_epochs() -> None:
    lengths = random_lengths()

    def as_lists(epoch: int) -> list[list[int]]:
        return [b.tolist() for b in epoch_batches(lengths, 500, seed=7, epoch=epoch)]

    assert as_lists(0) == as_lists(0)
    assert as_lists(0) != as_lists(1)


def test_ranks_take_disjoint_equal_shards() -> None:
    lengths = random_lengths()
    shards = [epoch_batches(lengths, 500, seed=7, epoch=3, rank=r, world_size=3) for r in range(3)]
    assert len({len(s) for s in shards}) == 1
    seen = [set(np.concatenate(s).tolist()) for s in shards]
    assert not (seen[0] & seen[1] or seen[0] & seen[2] or seen[1] & seen[2])


@pytest.mark.corpus
@pytest.mark.skipif(not MULTI30K.is_dir(), reason=missing(f"the Multi30k corpus ({MULTI30K})"))
def test_multi30k_reader_counts_filtered_pairs(tmp_path: Path) -> None:
    src, tgt = read_parallel(MULTI30K, "val", "en", "fr")
    assert len(src) == len(tgt) == 1014
    tokenizer = load_tokenizer(train_tokenizer(src + tgt, tmp_path / "spm.model", vocab_size=500))
    kept, counts = filter_pairs(tokenizer.encode(src), tokenizer.encode(tgt), max_tokens=20, max_ratio=1.5)
    assert counts.read == 1014 and counts.kept == len(kept)
    assert counts.too_long > 0 and counts.bad_ratio > 0
    assert counts.kept + counts.empty + counts.too_long + counts.bad_ratio == counts.read
