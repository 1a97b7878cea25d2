"""Where training caches a tokenized corpus (`training.corpus_cache`)."""

from keras_nmt.data.corpus import ParallelCorpus
from keras_nmt.data.tokenizer import Tokenizer
from keras_nmt.run_dir import RunDir
from keras_nmt.training.corpus_cache import cache_file
from tests.conftest import toy_pairs, write_pairs


def test_a_corpus_over_the_limit_gets_one_file_per_worker_and_a_new_one_when_it_changes(
    tmp_path, sp_models
):
    write_pairs(tmp_path / "data", "train", toy_pairs(10))
    corpus = ParallelCorpus.from_prefix(tmp_path / "data", "train", "en", "de")
    tokenizers = Tokenizer.load(sp_models[0]), Tokenizer.load(sp_models[1])
    run = RunDir(tmp_path / "run")

    def path(worker="worker0", limit=9):
        return cache_file(run, "train0", corpus, 10, limit, tokenizers, worker)

    assert path(limit=10) is None  # in memory
    first = path()
    assert first.parent == run.cache and first.name.startswith("train0-worker0-")
    assert path() == first  # the same corpus and tokenizers: the same cache
    other_worker = path("worker1")
    assert other_worker != first and other_worker.name.startswith("train0-worker1-")
    for name in (first.name + ".index", other_worker.name + ".index"):
        (run.cache / name).write_text("a finished cache")
    write_pairs(tmp_path / "data", "train", toy_pairs(11))  # the corpus changed (its size)
    changed = path()
    assert changed != first
    # The stale cache of worker0 is gone; worker1's is its own to replace.
    assert sorted(p.name for p in run.cache.iterdir()) == [other_worker.name + ".index"]
    reversed_tokenizers = tokenizers[::-1]
    assert cache_file(run, "train0", corpus, 10, 9, reversed_tokenizers, "worker0") != changed
