"""What the decoding strategies share: fixed-size output buffers, and stepping only the rows
still decoding."""

from __future__ import annotations

import tensorflow as tf

from keras_nmt.decoding.step import StepFn
from keras_nmt.special_ids import PAD_ID


def write_at(buffer, t, values):
    """Returns `buffer` `(batch, L, ...)` with position `t` of axis 1 set to `values`
    `(batch, ...)`. A fixed-size buffer: TensorArrays fail on an empty batch and do not
    convert to TFLite builtins."""
    length = tf.shape(buffer)[1]
    at_t = tf.equal(tf.range(length), t)  # (L,)
    at_t = tf.reshape(at_t, [1, -1] + [1] * (buffer.shape.rank - 2))
    return tf.where(at_t, tf.expand_dims(values, 1), buffer)


def token_at(tokens, positions):
    """The token at `positions` `(...)` along the last axis of `tokens` `(..., L)`; PAD where
    the position is past the end (so a hypothesis of maximum length, or L = 0, reads PAD)."""
    padded = tf.pad(tokens, [[0, 0]] * (tokens.shape.rank - 1) + [[0, 1]], constant_values=PAD_ID)
    last = tf.shape(padded)[-1] - 1
    return tf.gather(padded, tf.minimum(positions, last), axis=-1, batch_dims=positions.shape.rank)


def active_rows(active):
    """The indices `(n,)` int32 of the True entries of `active` `(m,)`, or `[0]` when there is
    none, so that a step never gets an empty batch."""
    none = tf.logical_not(tf.reduce_any(active))
    first = tf.equal(tf.range(tf.size(active)), 0)
    return tf.cast(tf.where(tf.logical_or(active, tf.logical_and(none, first)))[:, 0], tf.int32)


def scatter_rows(rows, values, size: tf.Tensor, like=None):
    """`values` `(n, ...)` placed at rows `rows` `(n,)` of a zero tensor `(size, ...)` (with
    the static shape of `like`, when given)."""
    shape = tf.concat([[size], tf.shape(values)[1:]], axis=0)
    placed = tf.scatter_nd(rows[:, None], values, shape)
    if like is not None:
        placed.set_shape(like.shape)
    return placed


def step_rows(step: StepFn, tokens, state, read, write, size):
    """Runs `step` on some rows only: those still decoding (finished ones would cost a full
    step each, the vocabulary projection included, for nothing).

    Args:
        tokens: `(n,)` the rows' input tokens.
        state: the step state, leaves `(size, ...)`.
        read: `(n,)` int32, the rows of `state` to step.
        write: `(n,)` int32, where their new states go (beam search reorders hypotheses:
            the new hypothesis `write[i]` extends `read[i]`).
        size: the number of rows of `state`.

    Returns:
        `(log_probs (n, V), state, attention (n, S))`: `state` has the new states at rows
        `write` and zeros elsewhere, except its leaves that the step passed through unchanged
        (the very tensor it was given, e.g. the encoder memory): those are per-sentence
        constants, returned whole as they came (`read[i]` and `write[i]` are always rows of
        the same sentence).
    """
    compact = tf.nest.map_structure(lambda x: tf.gather(x, read, axis=0), state)
    log_probs, new_state, attention = step(tokens, compact)

    def place(new, given, whole):
        return whole if new is given else scatter_rows(write, new, size, like=whole)

    return log_probs, tf.nest.map_structure(place, new_state, compact, state), attention
