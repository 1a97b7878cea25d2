"""The tf.data input pipeline from raw text pairs to padded teacher-forcing batches.

tokenize -> append EOS to the source -> cache -> filter (empty side, too long) ->
shuffle (seeded) -> teacher-forcing shift -> length bucketing (sentence- or token-based
batches, little padding) -> prefetch.

Every pipeline here runs without tf.data's autotuning model (`without_autotuning`): in TF
2.21, deleting an iterator waits for that model's optimisation thread to wake up, and the
thread sleeps up to 60 s between optimisations. Training makes a new iterator for every
epoch, so 12 of the 60-minute recipe's 32 epochs (90 s each) ended with a stall of 44-55 s.
The pipeline is not what limits training: without the model it reads an epoch of Multi30k
in 1.7 s.

Each batch a training step reads is `({"source": (batch, S), "decoder_input": (batch, T)},
labels (batch, T))`, int32, padded with PAD = 0, where `decoder_input = [BOS] + y` and
`labels = y + [EOS]`. With gradient accumulation a step reads a group of micro-batches
(`group_micro_batches`): the same structure with one more leading axis.
"""

from __future__ import annotations

import dataclasses

import tensorflow as tf

from keras_nmt.config import DataConfig, TrainConfig
from keras_nmt.data.corpus import ParallelCorpus
from keras_nmt.data.tokenizer import Tokenizer
from keras_nmt.special_ids import BOS_ID, EOS_ID

_TOKENIZE_BATCH = 1024


@dataclasses.dataclass(frozen=True)
class FilterCounts:
    """What filtering did to a corpus: pairs kept and dropped, by reason."""

    kept: int
    empty: int
    too_long: int
    source_tokens: int
    target_tokens: int

    def __str__(self) -> str:
        return (
            f"{self.kept} pairs kept, {self.empty} dropped with an empty side, "
            f"{self.too_long} dropped as too long"
        )


def tokenize_pairs(
    pairs: tf.data.Dataset, source_tokenizer: Tokenizer, target_tokenizer: Tokenizer
) -> tf.data.Dataset:
    """`(source, target)` strings to `(source_ids + [EOS], target_ids)` int32 vectors.

    The returned source is never empty: it always ends with EOS.
    """

    def tokenize(source, target):
        source_ids = source_tokenizer.tokenize(source)
        eos = tf.fill([source_ids.nrows(), 1], EOS_ID)
        return tf.concat([source_ids, eos], axis=1), target_tokenizer.tokenize(target)

    return pairs.batch(_TOKENIZE_BATCH).map(tokenize, num_parallel_calls=tf.data.AUTOTUNE).unbatch()


def _status(source_ids, target_ids, data: DataConfig):
    """0 = keep, 1 = empty side, 2 = too long (the source counts its EOS, the target its
    BOS/EOS)."""
    source_length = tf.shape(source_ids)[0]
    target_length = tf.shape(target_ids)[0]
    empty = tf.logical_or(source_length <= 1, target_length == 0)
    too_long = tf.logical_or(
        source_length > data.max_source_length, target_length + 1 > data.max_target_length
    )
    return tf.where(empty, 1, tf.where(too_long, 2, 0))


def without_autotuning(dataset: tf.data.Dataset) -> tf.data.Dataset:
    """`dataset` with tf.data's autotuning model off (see the module docstring). Its
    `AUTOTUNE` arguments then take tf.data's defaults. Datasets made from it inherit the
    option."""
    options = tf.data.Options()
    options.autotune.enabled = False
    return dataset.with_options(options)


def tokenized_corpus(
    corpus: ParallelCorpus, source_tokenizer: Tokenizer, target_tokenizer: Tokenizer
) -> tf.data.Dataset:
    """The corpus tokenized once: `tokenize_pairs`, cached in memory after its first full pass.

    Counting (`count_filtered`, `count_batches`) and every training epoch read the same cache,
    so the corpus is tokenized a single time. Every dataset made from it runs
    `without_autotuning`.
    """
    tokenized = tokenize_pairs(corpus.dataset(), source_tokenizer, target_tokenizer).cache()
    return without_autotuning(tokenized)


def count_filtered(tokenized: tf.data.Dataset, data: DataConfig) -> FilterCounts:
    """One streaming pass over `tokenized` pairs that counts what filtering keeps and drops."""

    def add(totals, pair):
        status = _status(*pair, data)
        kept = tf.cast(tf.equal(status, 0), tf.int64)
        lengths = tf.cast(tf.stack([tf.shape(pair[0])[0], tf.shape(pair[1])[0]]), tf.int64)
        return totals + tf.concat([tf.one_hot(status, 3, dtype=tf.int64), kept * lengths], axis=0)

    totals = tokenized.reduce(tf.zeros([5], tf.int64), add).numpy()
    return FilterCounts(*(int(x) for x in totals))


def count_batches(dataset: tf.data.Dataset) -> int:
    """The number of batches in one pass over `dataset` (the same in every pass: length
    bucketing puts each pair in the bucket of its length, whatever the shuffle order)."""
    return int(dataset.reduce(tf.constant(0, tf.int64), lambda count, _: count + 1))


def teacher_forcing(source_ids, target_ids):
    """The shift: `decoder_input = [BOS] + y`, `labels = y + [EOS]`."""
    decoder_input = tf.concat([[BOS_ID], target_ids], axis=0)
    labels = tf.concat([target_ids, [EOS_ID]], axis=0)
    return {"source": source_ids, "decoder_input": decoder_input}, labels


def batch_by_length(
    examples: tf.data.Dataset, train: TrainConfig, max_length: int
) -> tf.data.Dataset:
    """Groups examples of similar length into padded batches.

    With `batch_type: sentences` every batch has up to `batch_size` sentences; with
    `tokens`, up to `batch_size` tokens (padded length x sentences) per batch.
    """
    boundaries = list(range(train.bucket_width, max_length + 1, train.bucket_width))
    upper_bounds = [*boundaries, max_length + 1]
    if train.batch_type == "tokens":
        sizes = [max(1, train.batch_size // bound) for bound in upper_bounds]
    else:
        sizes = [train.batch_size] * len(upper_bounds)

    def length(inputs, labels):
        return tf.maximum(tf.shape(inputs["source"])[0], tf.shape(labels)[0])

    return examples.bucket_by_sequence_length(
        length, boundaries, sizes, pad_to_bucket_boundary=False
    )


def make_dataset(
    tokenized: tf.data.Dataset,
    data: DataConfig,
    train: TrainConfig,
    shuffle: bool,
    epoch: int = 0,
    shard: tuple[int, int] = (1, 0),
) -> tf.data.Dataset:
    """The batched, padded teacher-forcing dataset (see module docstring) of one pass over
    `tokenized_corpus` pairs.

    With `shuffle`, the order is seeded with `train.seed` and `epoch`: the same epoch always
    gives the same batches in the same order, which is what resuming mid-epoch relies on.
    `shard = (count, index)` keeps every count-th pair from the index-th (one input pipeline
    of a multi-worker run). Batches hold up to `train.batch_size` sentences or tokens.
    """
    examples = tokenized.filter(lambda s, t: tf.equal(_status(s, t, data), 0))
    if shard[0] > 1:
        examples = examples.shard(*shard)
    if shuffle:
        examples = examples.shuffle(
            train.shuffle_buffer, seed=train.seed * 10_000 + epoch, reshuffle_each_iteration=False
        )
    examples = examples.map(teacher_forcing, num_parallel_calls=tf.data.AUTOTUNE)
    max_length = max(data.max_source_length, data.max_target_length)
    return batch_by_length(examples, train, max_length).prefetch(tf.data.AUTOTUNE)


def group_micro_batches(batches: tf.data.Dataset, size: int) -> tf.data.Dataset:
    """Groups of `size` consecutive batches, each `(size, batch, length)`, padded with PAD
    to the largest batch and length of the group (the last group may hold fewer):
    `Seq2Seq.train_step` trains on a group as on one batch holding its batches, each
    trimmed back to its own shape (gradient accumulation)."""
    if size < 1:
        raise ValueError(f"size: expected >= 1, received {size}")
    return batches.padded_batch(size)
