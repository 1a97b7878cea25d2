import numpy as np
import pytest
import tensorflow as tf

from keras_nmt.config import DataConfig, TrainConfig
from keras_nmt.data.corpus import ParallelCorpus
from keras_nmt.data.pipeline import (
    count_batches,
    count_filtered,
    end_with_eos,
    make_dataset,
    pass_batches,
    teacher_forcing,
    tokenized_corpus,
)
from keras_nmt.data.tokenizer import Tokenizer
from keras_nmt.special_ids import BOS_ID, EOS_ID, PAD_ID
from tests.conftest import toy_pairs, write_pairs


def test_teacher_forcing_shift():
    inputs, labels = teacher_forcing(tf.constant([7, 8, EOS_ID]), tf.constant([5, 6]))
    assert inputs["source"].numpy().tolist() == [7, 8, EOS_ID]
    assert inputs["decoder_input"].numpy().tolist() == [BOS_ID, 5, 6]
    assert labels.numpy().tolist() == [5, 6, EOS_ID]


def test_teacher_forcing_shifts_a_ragged_batch_as_it_shifts_each_pair():
    targets = tf.ragged.constant([[5, 6], [], [7]], dtype=tf.int32)
    inputs, labels = teacher_forcing(tf.constant([[9, EOS_ID]]), targets)
    for row, target in enumerate(targets):
        one_inputs, one_labels = teacher_forcing(tf.constant([9, EOS_ID]), target)
        expected = one_inputs["decoder_input"].numpy().tolist()
        assert inputs["decoder_input"][row].numpy().tolist() == expected
        assert labels[row].numpy().tolist() == one_labels.numpy().tolist()
    assert labels.to_list() == [[5, 6, EOS_ID], [EOS_ID], [7, EOS_ID]]


def test_end_with_eos_truncates_then_appends_to_a_sentence_or_a_batch():
    sentence = tf.constant([5, 6, 7])
    assert end_with_eos(sentence).numpy().tolist() == [5, 6, 7, EOS_ID]
    assert end_with_eos(sentence, max_tokens=3).numpy().tolist() == [5, 6, EOS_ID]
    assert end_with_eos(tf.constant([], tf.int32), max_tokens=3).numpy().tolist() == [EOS_ID]
    batch = tf.ragged.constant([[5, 6, 7], [], [8]], dtype=tf.int32)
    assert end_with_eos(batch, max_tokens=3).to_list() == [[5, 6, EOS_ID], [EOS_ID], [8, EOS_ID]]
    assert end_with_eos(batch).to_list() == [[5, 6, 7, EOS_ID], [EOS_ID], [8, EOS_ID]]


def _setup(tmp_path, sp_models, pairs):
    write_pairs(tmp_path, "train", pairs)
    corpus = ParallelCorpus.from_prefix(tmp_path, "train", "en", "de")
    return tokenized_corpus(corpus, Tokenizer.load(sp_models[0]), Tokenizer.load(sp_models[1]))


def test_empty_and_long_pairs_are_dropped_and_counted(tmp_path, sp_models):
    long = " ".join(["one two three"] * 20)
    pairs = [("one two", "TWO ONE"), ("", "ONE"), ("three", "   "), (long, "ONE"), ("four", "FOUR")]
    tokenized = _setup(tmp_path, sp_models, pairs)
    data = DataConfig(max_source_length=20, max_target_length=20)
    counts = count_filtered(tokenized, data)
    assert (counts.kept, counts.empty, counts.too_long) == (2, 2, 1)
    assert "2 pairs kept, 2 dropped with an empty side, 1 dropped as too long" == str(counts)
    batches = list(make_dataset(tokenized, data, TrainConfig(), shuffle=False))
    assert sum(int(b[1].shape[0]) for b in batches) == 2


def test_batches_are_padded_shifted_and_grouped_by_length(tmp_path, sp_models):
    tokenized = _setup(tmp_path, sp_models, toy_pairs(48))
    train = TrainConfig(batch_size=8, bucket_width=3, seed=1)
    batches = list(make_dataset(tokenized, DataConfig(), train, shuffle=True))
    assert sum(int(b[1].shape[0]) for b in batches) == 48
    for inputs, labels in batches:
        src, dec = inputs["source"].numpy(), inputs["decoder_input"].numpy()
        lab = labels.numpy()
        assert src.shape[0] <= 8 and dec.shape == lab.shape
        assert (dec[:, 0] == BOS_ID).all()
        # Every source row ends with EOS, followed only by PAD.
        for row in src:
            real = row[row != PAD_ID]
            assert real[-1] == EOS_ID and (row[len(real) :] == PAD_ID).all()
        # labels are decoder_input shifted left by one, ending with EOS.
        for d, y in zip(dec, lab):
            n = int((y != PAD_ID).sum())
            assert y[n - 1] == EOS_ID and (d[1:n] == y[: n - 1]).all()
    # Seeded shuffling: the same seed gives the same batches.
    again = list(make_dataset(tokenized, DataConfig(), train, shuffle=True))
    assert all((a[1].numpy() == b[1].numpy()).all() for a, b in zip(batches, again, strict=True))


def test_token_batches_respect_the_token_budget(tmp_path, sp_models):
    tokenized = _setup(tmp_path, sp_models, toy_pairs(48))
    train = TrainConfig(batch_size=40, batch_type="tokens", bucket_width=4)
    for inputs, labels in make_dataset(tokenized, DataConfig(), train, shuffle=False):
        width = max(inputs["source"].shape[1], labels.shape[1])
        upper = (width // 4 + 1) * 4  # the bucket's exclusive upper bound
        assert labels.shape[0] * (upper - 1) <= max(40, upper)


def test_training_and_validation_batches_run_without_the_autotuning_model(tmp_path, sp_models):
    # Deleting an iterator of an autotuned pipeline waits for the autotuning thread's next
    # wake-up (up to 60 s): training makes one iterator per epoch.
    tokenized = _setup(tmp_path, sp_models, toy_pairs(8))
    assert tokenized.options().autotune.enabled is False
    for shuffle in (True, False):
        dataset = make_dataset(tokenized, DataConfig(), TrainConfig(batch_size=4), shuffle=shuffle)
        assert dataset.options().autotune.enabled is False
        assert sum(int(b[1].shape[0]) for b in dataset) == 8


def test_weighted_corpora_are_drawn_at_their_weights_and_repeat_per_epoch(tmp_path, sp_models):
    """Two corpora of one sentence each, weights 3:1: the share of the first in 100 batches
    of 8 is 0.75 within 0.05 (over 3 standard deviations of 800 draws); the same epoch gives
    the same batches, another epoch others."""
    first = _setup(tmp_path / "a", sp_models, [("one two", "TWO ONE THREE FOUR")] * 40)
    second = _setup(tmp_path / "b", sp_models, [("five", "FIVE")] * 40)
    train = TrainConfig(batch_size=8, bucket_width=100)

    def batches(epoch):
        mixed = make_dataset([first, second], DataConfig(), train, True, epoch, weights=[3, 1])
        return [labels.numpy() for _, labels in mixed.take(100)]

    epoch_0 = batches(0)
    lengths = np.concatenate([(labels != 0).sum(axis=1) for labels in epoch_0])
    kinds = sorted(set(lengths.tolist()))
    assert len(kinds) == 2 and len(lengths) == 800  # the two corpora, told apart by length
    share = float(np.mean(lengths == kinds[1]))  # the first corpus's, the longer
    assert abs(share - 0.75) < 0.05, share
    assert all(np.array_equal(a, b) for a, b in zip(batches(0)[:10], epoch_0[:10]))
    assert not all(np.array_equal(a, b) for a, b in zip(batches(1)[:10], epoch_0[:10]))
    with pytest.raises(ValueError, match="one per corpus"):
        make_dataset([first, second], DataConfig(), train, True, weights=[1])


@pytest.mark.parametrize(
    "train",
    [
        TrainConfig(batch_size=8, bucket_width=3),
        TrainConfig(batch_size=5, bucket_width=1),
        TrainConfig(batch_size=3, bucket_width=50),
        TrainConfig(batch_size=40, batch_type="tokens", bucket_width=4),
    ],
)
def test_pass_batches_counts_the_batches_a_pass_makes(tmp_path, sp_models, train):
    """The batch count worked out from the filter counts' lengths equals the number of
    batches `make_dataset` yields, for sentence and token batches, over two corpora read
    together, with pairs filtered out."""
    long = " ".join(["one two three"] * 20)
    first = _setup(tmp_path / "a", sp_models, toy_pairs(37) + [(long, "ONE"), ("", "TWO")])
    second = _setup(tmp_path / "b", sp_models, toy_pairs(23))
    data = DataConfig(max_source_length=30, max_target_length=30)
    counts = count_filtered(first, data) + count_filtered(second, data)
    assert sum(counts.lengths) == counts.kept == 60
    batches = make_dataset([first, second], data, train, shuffle=True, epoch=3)
    assert pass_batches(counts, data, train) == count_batches(batches)


def test_a_file_cache_gives_the_batches_of_the_memory_cache_and_survives_a_killed_writer(
    tmp_path, sp_models
):
    """A corpus cached in a file yields what the in-memory cache yields; leftovers of a
    writer killed mid-pass (the lockfile that makes tf.data refuse to write, a partial
    shard) are removed and the cache is written again; a complete cache is read as it is."""
    write_pairs(tmp_path, "train", toy_pairs(40))
    corpus = ParallelCorpus.from_prefix(tmp_path, "train", "en", "de")
    tokenizers = Tokenizer.load(sp_models[0]), Tokenizer.load(sp_models[1])
    cache = tmp_path / "cache" / "train0"
    cache.parent.mkdir()
    # What a writer killed mid-pass leaves (tf.data 2.21, seen after a SIGKILL).
    for leftover in ("_0.lockfile", "_0.data-00000-of-00001.tempstate138268356959127099"):
        (cache.parent / (cache.name + leftover)).write_bytes(b"left by a killed writer")

    def batches(tokenized):
        train = TrainConfig(batch_size=8, bucket_width=3)
        dataset = make_dataset(tokenized, DataConfig(), train, shuffle=True, epoch=1)
        return [labels.numpy().tolist() for _, labels in dataset]

    in_memory = tokenized_corpus(corpus, *tokenizers)
    in_file = tokenized_corpus(corpus, *tokenizers, cache_file=cache)
    assert count_filtered(in_file, DataConfig()) == count_filtered(in_memory, DataConfig())
    names = sorted(p.name for p in cache.parent.iterdir())
    assert "train0.index" in names and not any("lockfile" in name for name in names)
    assert batches(in_file) == batches(in_memory)
    written = (cache.parent / "train0.index").stat().st_mtime_ns
    again = tokenized_corpus(corpus, *tokenizers, cache_file=cache)
    assert batches(again) == batches(in_memory)
    assert (cache.parent / "train0.index").stat().st_mtime_ns == written


def test_batch_shuffling_reorders_an_epochs_batches_and_nothing_else(tmp_path, sp_models):
    """`train.batch_shuffle_buffer`: the same batches as without it (a permutation, so
    `pass_batches` still counts them) in another order, the same for the same epoch."""
    tokenized = _setup(tmp_path, sp_models, toy_pairs(96))
    plain = TrainConfig(batch_size=5, bucket_width=1, seed=2)
    mixed = TrainConfig(batch_size=5, bucket_width=1, seed=2, batch_shuffle_buffer=100)

    def batches(train, epoch=1):
        dataset = make_dataset(tokenized, DataConfig(), train, shuffle=True, epoch=epoch)
        return [labels.numpy().tolist() for _, labels in dataset]

    unshuffled, shuffled = batches(plain), batches(mixed)
    assert sorted(map(str, unshuffled)) == sorted(map(str, shuffled))
    assert unshuffled != shuffled
    assert batches(mixed) == shuffled and batches(mixed, epoch=2) != shuffled
