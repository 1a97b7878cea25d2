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


def scatter_rows(rows, values, num_rows: tf.Tensor, like=None):
    """`values` `(n, ...)` placed at rows `rows` `(n,)` of a zero tensor `(num_rows, ...)`
    (with the static shape of `like`, when given)."""
    shape = tf.concat([[num_rows], tf.shape(values)[1:]], axis=0)
    placed = tf.scatter_nd(rows[:, None], values, shape)
    if like is not None:
        placed.set_shape(like.shape)
    return placed


def step_rows(step: StepFn, tokens, state, from_rows, to_rows, num_rows):
    """Runs `step` on some rows only: those still decoding (finished ones would cost a full
    step each, the vocabulary projection included, for nothing).

    Args:
        tokens: `(n,)` the input tokens of the rows stepped.
        state: the step state, leaves `(num_rows, ...)`.
        from_rows: `(n,)` int32, the rows of `state` to step.
        to_rows: `(n,)` int32, the rows where their new states go: the new state of
            `from_rows[i]` goes to row `to_rows[i]` (greedy search passes the same rows
            twice; beam search reorders hypotheses, the new hypothesis `to_rows[i]`
            extending `from_rows[i]`).
        num_rows: the number of rows of `state`.

    Returns:
        `(log_probs (n, V), state, attention (n, S))`: `state` has the new states at rows
        `to_rows` and zeros elsewhere, except its leaves that the step passed through
        unchanged (the very tensor it was given, e.g. the encoder memory): those are
        per-sentence constants, returned whole as they came (`from_rows[i]` and `to_rows[i]`
        are always rows of the same sentence).
    """
    stepped = tf.nest.map_structure(lambda x: tf.gather(x, from_rows, axis=0), state)
    log_probs, new_state, attention = step(tokens, stepped)

    def place(new, given, whole):
        return whole if new is given else scatter_rows(to_rows, new, num_rows, like=whole)

    return log_probs, tf.nest.map_structure(place, new_state, stepped, state), attention
