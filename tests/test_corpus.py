import gzip

import pytest

from keras_nmt.data.corpus import ParallelCorpus
from keras_nmt.errors import DataError


def _pairs(dataset):
    return [(s.decode(), t.decode()) for s, t in dataset.as_numpy_iterator()]


def test_two_files_plain_and_gzip(tmp_path):
    (tmp_path / "train.en").write_text("a b\n c \n")
    with gzip.open(tmp_path / "train.de.gz", "wt", encoding="utf-8") as f:
        f.write("A B\nC\n")
    corpus = ParallelCorpus.from_prefix(tmp_path, "train", "en", "de")
    assert corpus.check() == 2
    assert _pairs(corpus.dataset()) == [("a b", "A B"), ("c", "C")]
    assert list(corpus.target_lines()) == ["A B", "C"]


def test_tsv(tmp_path):
    (tmp_path / "train.tsv").write_text("a b\tA B\nc\tC\r\n")
    corpus = ParallelCorpus.from_prefix(tmp_path, "train", "en", "de")
    assert corpus.tsv is not None and corpus.check() == 2
    assert _pairs(corpus.dataset()) == [("a b", "A B"), ("c", "C")]
    assert list(corpus.source_lines()) == ["a b", "c"]


def test_tsv_line_without_tab_is_an_error(tmp_path):
    (tmp_path / "train.tsv").write_text("a\tA\nno tab here\n")
    with pytest.raises(DataError, match=r"train.tsv:2: expected one tab"):
        ParallelCorpus.from_prefix(tmp_path, "train", "en", "de").check()


def test_misaligned_corpus_names_both_files_and_counts(tmp_path):
    (tmp_path / "train.en").write_text("a\nb\nc\n")
    (tmp_path / "train.de").write_text("A\nB\n")
    with pytest.raises(DataError) as info:
        ParallelCorpus.from_prefix(tmp_path, "train", "en", "de").check()
    message = str(info.value)
    assert "train.en has 3 lines" in message and "train.de has 2" in message


def test_invalid_utf8_names_file_and_line(tmp_path):
    (tmp_path / "train.en").write_bytes(b"ok\nbad \xff\n")
    (tmp_path / "train.de").write_text("A\nB\n")
    with pytest.raises(DataError, match=r"train.en:2: not valid UTF-8"):
        ParallelCorpus.from_prefix(tmp_path, "train", "en", "de").check()


def test_missing_corpus(tmp_path):
    with pytest.raises(DataError, match="corpus 'train' not found"):
        ParallelCorpus.from_prefix(tmp_path, "train", "en", "de")
    with pytest.raises(DataError, match="corpus directory not found"):
        ParallelCorpus.from_prefix(tmp_path / "nope", "train", "en", "de")
