"""The tf.data input pipeline from raw text pairs to padded teacher-forcing batches.

tokenize -> append EOS to the source -> cache (in memory, or a file for a corpus too
large for memory) -> filter (empty side, too long) -> shuffle (seeded, a bounded buffer) ->
teacher-forcing shift -> length bucketing (sentence- or token-based batches, little padding)
-> prefetch.

Every pipeline here runs without tf.data's autotuning model (`without_autotuning`): in TF
2.21, deleting an iterator of an autotuned dataset waits for the autotuning model's
optimisation thread to wake up, and that thread sleeps up to 60 s between optimisations.
Training makes a new iterator for every epoch, so each epoch could end with a wait of up to
a minute.

Each batch a training step reads is `({"source": (batch, S), "decoder_input": (batch, T)},
labels (batch, T))`, int32, padded with PAD = 0, where `decoder_input = [BOS] + y` and
`labels = y + [EOS]`. With gradient accumulation a step reads a group of micro-batches
(`group_micro_batches`): the same structure with one more leading axis.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import itertools
import pathlib
from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from keras_nmt.config import DataConfig, TrainConfig
from keras_nmt.data.corpus import ParallelCorpus
from keras_nmt.data.tokenizer import Tokenizer
from keras_nmt.special_ids import BOS_ID, EOS_ID

_TOKENIZE_BATCH = 1024


@dataclasses.dataclass(frozen=True)
class FilterCounts:
    """What filtering did to a corpus: pairs kept and dropped, by reason, the kept pairs'
    tokens, and `lengths[n]`: how many kept pairs have padded length n (`padded_length`),
    from which `pass_batches` counts an epoch's batches without reading the corpus again."""

    kept: int
    empty: int
    too_long: int
    source_tokens: int
    target_tokens: int
    lengths: tuple[int, ...] = ()

    def __add__(self, other: FilterCounts) -> FilterCounts:
        """The counts of two corpora together (counted with the same length limits)."""
        return FilterCounts(
            *(
                getattr(self, f.name) + getattr(other, f.name)
                for f in dataclasses.fields(self)[:-1]
            ),
            lengths=tuple(
                a + b for a, b in itertools.zip_longest(self.lengths, other.lengths, fillvalue=0)
            ),
        )

    def __str__(self) -> str:
        return (
            f"{self.kept} pairs kept, {self.empty} dropped with an empty side, "
            f"{self.too_long} dropped as too long"
        )


class FilterStatus(enum.IntEnum):
    """What filtering does with a pair (`filter_status`)."""

    KEPT = 0
    EMPTY = 1  # a side without tokens
    TOO_LONG = 2  # a side longer than `data.max_source_length` or `data.max_target_length`


def end_with_eos(ids, max_tokens: int | None = None):
    """`ids` cut to their first `max_tokens - 1` tokens (all of them when None), then EOS:
    never empty, and at most `max_tokens` tokens.

    Args:
        ids: one sentence's ids `(S,)`, or a batch of them, ragged `(batch, None)`.

    Returns:
        The same kind: `(min(S, max_tokens - 1) + 1,)`, or ragged `(batch, None)`.
    """
    limit = None if max_tokens is None else max_tokens - 1
    return tf.concat([ids[..., :limit], _one_position(ids, EOS_ID)], axis=-1)


def teacher_forcing(source_ids, target_ids):
    """The shift: `decoder_input = [BOS] + y`, `labels = y + [EOS]`, for one pair (vectors)
    or a batch of them (ragged `(batch, None)`; the source can be of any kind)."""
    decoder_input = tf.concat([_one_position(target_ids, BOS_ID), target_ids], axis=-1)
    labels = tf.concat([target_ids, _one_position(target_ids, EOS_ID)], axis=-1)
    return {"source": source_ids, "decoder_input": decoder_input}, labels


def _one_position(ids, token: int):
    """`token` as one more position of `ids`: `(1,)` for a vector, `(batch, 1)` for a ragged
    batch."""
    if isinstance(ids, tf.RaggedTensor):
        return tf.fill([ids.nrows(), 1], token)
    return tf.fill([1], token)


def tokenize_pairs(
    pairs: tf.data.Dataset, source_tokenizer: Tokenizer, target_tokenizer: Tokenizer
) -> tf.data.Dataset:
    """`(source, target)` strings to batches of up to `_TOKENIZE_BATCH` tokenized pairs:
    `(source_ids + [EOS], target_ids)`, int32 ragged `(batch, None)` each.

    The returned sources are never empty: they always end with EOS.
    """

    def tokenize(source, target):
        return end_with_eos(source_tokenizer.tokenize(source)), target_tokenizer.tokenize(target)

    return pairs.batch(_TOKENIZE_BATCH).map(tokenize, num_parallel_calls=tf.data.AUTOTUNE)


def filter_status(source_ids, target_ids, data: DataConfig) -> tf.Tensor:
    """The pair's `FilterStatus`, an int32 scalar (the source's length counts its EOS, the
    target's its BOS or EOS)."""
    return _status(tf.shape(source_ids)[0], tf.shape(target_ids)[0], data)


def _status(source_length, target_length, data: DataConfig) -> tf.Tensor:
    """`filter_status` from the lengths of the tokenized source (with its EOS) and target
    (without BOS or EOS): int32 scalars, or vectors of pairs."""
    empty = tf.logical_or(source_length <= 1, target_length == 0)
    too_long = tf.logical_or(
        source_length > data.max_source_length, target_length + 1 > data.max_target_length
    )
    return tf.where(
        empty,
        FilterStatus.EMPTY.value,
        tf.where(too_long, FilterStatus.TOO_LONG.value, FilterStatus.KEPT.value),
    )


def padded_length(source_length, target_length):
    """The length that `batch_by_length` buckets a tokenized pair by: its source with EOS,
    or its target with BOS (or EOS), whichever is longer."""
    return tf.maximum(source_length, target_length + 1)


def without_autotuning(dataset: tf.data.Dataset) -> tf.data.Dataset:
    """`dataset` with tf.data's autotuning model off (see the module docstring). Its
    `AUTOTUNE` arguments then take tf.data's defaults. Datasets made from it inherit the
    option."""
    options = tf.data.Options()
    options.autotune.enabled = False
    return dataset.with_options(options)


def tokenized_corpus(
    corpus: ParallelCorpus,
    source_tokenizer: Tokenizer,
    target_tokenizer: Tokenizer,
    cache_file: str | pathlib.Path | None = None,
) -> tf.data.Dataset:
    """The corpus tokenized once: `tokenize_pairs`'s batches of ragged pairs, cached after
    the first full pass, in memory, or with `cache_file` in that file (TensorFlow's tf.data
    cache: `cache_file.index` and `cache_file.data-*`, written whole at the end of the first
    full pass). Cached as batches, not pairs: the cache is written, read and counted about a
    thousand times fewer elements at a time (`make_dataset` unbatches them).

    Counting (`count_filtered`) and every training epoch read the same cache, so the corpus
    is tokenized a single time. A `cache_file` left unfinished by a killed process (its
    lockfile and partial files, no index) is removed first, so the pass starts again.
    Every dataset made from it runs `without_autotuning`.
    """
    if cache_file is not None:
        remove_unfinished_cache(cache_file)
    tokenized = tokenize_pairs(corpus.dataset(), source_tokenizer, target_tokenizer)
    return without_autotuning(tokenized.cache("" if cache_file is None else str(cache_file)))


def remove_unfinished_cache(cache_file: str | pathlib.Path) -> None:
    """Removes what an unfinished tf.data file cache `cache_file` left: the writer's lockfile
    (tf.data refuses to write while it exists) and partial files, unless the cache is
    complete (its `.index` file exists). One process owns a cache file (`train` names one per
    worker), so a lockfile found at start belongs to a process that is gone."""
    path = pathlib.Path(cache_file)
    if path.with_name(path.name + ".index").exists():
        return
    for leftover in path.parent.glob(path.name + "*"):
        leftover.unlink()


def count_filtered(tokenized: tf.data.Dataset, data: DataConfig) -> FilterCounts:
    """One streaming pass over the `tokenized_corpus` batches that counts what filtering
    keeps and drops, and the kept pairs' padded lengths."""
    max_length = max(data.max_source_length, data.max_target_length)
    size = len(FilterStatus) + 2 + max_length + 1  # the fields of `FilterCounts`, in order

    def add(totals, batch):
        source, target = batch
        source_length = tf.cast(source.row_lengths(), tf.int32)
        target_length = tf.cast(target.row_lengths(), tf.int32)
        status = _status(source_length, target_length, data)
        kept = tf.equal(status, FilterStatus.KEPT.value)
        by_status = tf.math.bincount(status, minlength=len(FilterStatus), dtype=tf.int64)
        tokens = tf.cast(
            tf.stack(
                [
                    tf.reduce_sum(tf.boolean_mask(source_length, kept)),
                    tf.reduce_sum(tf.boolean_mask(target_length, kept)),
                ]
            ),
            tf.int64,
        )
        lengths = tf.boolean_mask(padded_length(source_length, target_length), kept)
        by_length = tf.math.bincount(lengths, minlength=max_length + 1, dtype=tf.int64)
        return totals + tf.concat([by_status, tokens, by_length], axis=0)

    totals = tokenized.reduce(tf.zeros([size], tf.int64), add).numpy().tolist()
    numbers, lengths = totals[: len(FilterStatus) + 2], totals[len(FilterStatus) + 2 :]
    return FilterCounts(*numbers, lengths=tuple(lengths))


def count_batches(dataset: tf.data.Dataset) -> int:
    """The number of batches in one pass over `dataset`, by reading it."""
    return int(dataset.reduce(tf.constant(0, tf.int64), lambda count, _: count + 1))


def pass_batches(counts: FilterCounts, data: DataConfig, train: TrainConfig) -> int:
    """The number of batches in one pass of `make_dataset` over the corpus that `counts`
    counted, batched as `train` says, worked out from the kept pairs' lengths: length
    bucketing puts each pair in the bucket of its length whatever the shuffle order, and
    makes ceil(pairs / batch size) batches of each bucket."""
    boundaries, sizes = _buckets(train, max(data.max_source_length, data.max_target_length))
    lengths = np.asarray(counts.lengths, np.int64)
    buckets = np.searchsorted(boundaries, np.arange(len(lengths)), side="right")
    pairs = np.bincount(buckets, weights=lengths, minlength=len(sizes))
    return int(sum(-(-int(n) // size) for n, size in zip(pairs, sizes)))


def _buckets(train: TrainConfig, max_length: int) -> tuple[list[int], list[int]]:
    """Length bucketing's boundaries and each bucket's batch size (sentences): bucket i holds
    the pairs of padded length in [boundaries[i - 1], boundaries[i])."""
    boundaries = list(range(train.bucket_width, max_length + 1, train.bucket_width))
    upper_bounds = [*boundaries, max_length + 1]
    if train.batch_type == "tokens":
        return boundaries, [max(1, train.batch_size // bound) for bound in upper_bounds]
    return boundaries, [train.batch_size] * len(upper_bounds)


def batch_by_length(
    examples: tf.data.Dataset, train: TrainConfig, max_length: int
) -> tf.data.Dataset:
    """Groups examples of similar length into padded batches.

    With `batch_type: sentences` every batch has up to `batch_size` sentences; with
    `tokens`, up to `batch_size` tokens (padded length x sentences) per batch.
    """
    boundaries, sizes = _buckets(train, max_length)

    def length(inputs, labels):  # labels: the target and EOS
        return padded_length(tf.shape(inputs["source"])[0], tf.shape(labels)[0] - 1)

    return examples.bucket_by_sequence_length(
        length, boundaries, sizes, pad_to_bucket_boundary=False
    )


def make_dataset(
    tokenized: tf.data.Dataset | Sequence[tf.data.Dataset],
    data: DataConfig,
    train: TrainConfig,
    shuffle: bool,
    epoch: int = 0,
    shard: tuple[int, int] = (1, 0),
    weights: Sequence[float] | None = None,
) -> tf.data.Dataset:
    """The batched, padded teacher-forcing dataset (see module docstring) of one pass over
    `tokenized_corpus` pairs, or over several corpora's in turn.

    With `shuffle`, the order is seeded with `train.seed` and `epoch`: the same epoch always
    gives the same batches in the same order, which is what resuming mid-epoch relies on.
    `train.batch_shuffle_buffer` > 0 also shuffles the batches through a buffer of that many.
    `shard = (count, index)` keeps every count-th pair from the index-th (one input pipeline
    of a multi-worker run). Batches hold up to `train.batch_size` sentences or tokens.

    With `weights` (one per corpus, with `shuffle`), the dataset is endless: each corpus is
    shuffled and repeated on its own, and each pair is drawn from corpus i with probability
    `weights[i] / sum(weights)` (`tf.data.Dataset.sample_from_datasets`, seeded like the
    shuffle).
    """
    parts = [tokenized] if isinstance(tokenized, tf.data.Dataset) else list(tokenized)
    if weights is None:
        whole = functools.reduce(lambda a, b: a.concatenate(b), parts)
        examples = _examples(whole, data, train, shuffle, epoch, shard)
    else:
        if not shuffle or len(weights) != len(parts):
            raise ValueError(
                f"weights: expected one per corpus ({len(parts)}) and shuffle, got "
                f"{len(weights)} and shuffle={shuffle}"
            )
        streams = [
            _examples(part, data, train, True, epoch, shard, corpus=i).repeat()
            for i, part in enumerate(parts)
        ]
        seed = _epoch_seed(train, epoch)
        probabilities = [float(weight) for weight in weights]
        examples = tf.data.Dataset.sample_from_datasets(streams, probabilities, seed=seed)
    examples = examples.map(teacher_forcing, num_parallel_calls=tf.data.AUTOTUNE)
    max_length = max(data.max_source_length, data.max_target_length)
    batches = batch_by_length(examples, train, max_length)
    if shuffle and train.batch_shuffle_buffer:
        # Length bucketing flushes every bucket's remainder when the pass ends, so without
        # this an epoch ends with the same partial batches of the longest sentences, in
        # increasing length.
        seed = _epoch_seed(train, epoch, stream=13)
        batches = batches.shuffle(
            train.batch_shuffle_buffer, seed=seed, reshuffle_each_iteration=False
        )
    return batches.prefetch(tf.data.AUTOTUNE)


def _examples(tokenized, data, train, shuffle, epoch, shard, corpus: int = 0) -> tf.data.Dataset:
    """One corpus's pairs (from `tokenized_corpus` batches) that filtering keeps, this
    pipeline's shard, shuffled (seeded by `train.seed`, `epoch` and the `corpus` index) when
    `shuffle`."""
    kept = FilterStatus.KEPT.value
    examples = tokenized.unbatch().filter(lambda s, t: tf.equal(filter_status(s, t, data), kept))
    if shard[0] > 1:
        examples = examples.shard(*shard)
    if shuffle:
        seed = _epoch_seed(train, epoch, stream=7919 * corpus)
        examples = examples.shuffle(train.shuffle_buffer, seed=seed, reshuffle_each_iteration=False)
    return examples


def _epoch_seed(train, epoch: int, stream: int = 0) -> int:
    """The seed of one random stream of an epoch's pipeline (the corpus mix, a corpus's
    pair shuffle, the batch shuffle): fixed by `train.seed`, `epoch` and `stream`."""
    return train.seed * 10_000 + epoch + stream


def group_micro_batches(batches: tf.data.Dataset, size: int) -> tf.data.Dataset:
    """Groups of `size` consecutive batches, each `(size, batch, length)`, padded with PAD
    to the largest batch and length of the group (the last group may hold fewer):
    `Seq2Seq.train_step` trains on a group as on one batch holding its batches, each
    trimmed back to its own shape (gradient accumulation)."""
    if size < 1:
        raise ValueError(f"size: expected >= 1, received {size}")
    return batches.padded_batch(size)
