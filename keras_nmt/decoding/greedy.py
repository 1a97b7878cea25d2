"""Greedy decoding: the most probable token at every step, in one tf.while_loop."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import tensorflow as tf

from keras_nmt.tokenizer import PAD_ID

StepFn = Callable[[tf.Tensor, Any], tuple[tf.Tensor, Any, tf.Tensor]]


class DecodeResult(NamedTuple):
    """Decoded hypotheses, one per sentence.

    tokens: `(batch, L)` int32; the hypothesis, its EOS (if it emitted one), then PAD.
    lengths: `(batch,)` int32; the number of tokens before EOS (what to detokenize).
    scores: `(batch,)` float32; the sum of the log-probabilities of the emitted tokens
        (EOS included).
    attention: `(batch, L, S)` float32; the attention weights of each emitted token.
    """

    tokens: tf.Tensor
    lengths: tf.Tensor
    scores: tf.Tensor
    attention: tf.Tensor


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


def greedy_search(
    step: StepFn,
    start_ids: tf.Tensor,
    initial_state: Any,
    end_id: int,
    max_lengths: tf.Tensor,
) -> DecodeResult:
    """Decodes greedily until every sentence has emitted `end_id` or reached its maximum.

    Args:
        step: the step function (see `keras_nmt.decoding`).
        start_ids: `(batch,)` int32, the first input token (BOS).
        initial_state: the step function's state for these sentences.
        end_id: the EOS id.
        max_lengths: `(batch,)` int32, the most tokens (EOS included) each sentence may emit.

    Returns:
        A `DecodeResult`.
    """
    batch = tf.shape(start_ids)[0]
    max_lengths = tf.cast(max_lengths, tf.int32)
    length = tf.reduce_max(tf.concat([max_lengths, [0]], axis=0))

    def choose(log_probs):
        """`(n, V)` -> the best token `(n,)` and its log-probability `(n,)` float32."""
        best = tf.argmax(log_probs, axis=-1, output_type=tf.int32)
        return best, tf.cast(tf.gather(log_probs, best, axis=1, batch_dims=1), tf.float32)

    log_probs, state, attention = step(start_ids, initial_state)
    best, best_log_prob = choose(log_probs)
    tokens = tf.fill([batch, length], PAD_ID)
    weights = tf.zeros([batch, length, tf.shape(attention)[1]], attention.dtype)
    finished = tf.less_equal(max_lengths, 0)
    lengths = tf.zeros([batch], tf.int32)
    scores = tf.zeros([batch], tf.float32)

    def body(t, best, best_log_prob, state, attention, tokens, weights, finished, lengths, scores):
        token = tf.where(finished, PAD_ID, best)
        tokens = write_at(tokens, t, token)
        weights = write_at(weights, t, tf.where(finished[:, None], 0.0, attention))
        scores += tf.where(finished, 0.0, best_log_prob)
        ended = tf.logical_and(tf.logical_not(finished), tf.equal(best, end_id))
        lengths += tf.cast(tf.logical_not(tf.logical_or(finished, ended)), tf.int32)
        finished = tf.logical_or(tf.logical_or(finished, ended), t + 1 >= max_lengths)
        # The next step, for the sentences still decoding only.
        rows = active_rows(tf.logical_not(finished))
        log_probs, state, new_attention = step_rows(
            step, tf.gather(token, rows), state, rows, rows, batch
        )
        new_best, new_log_prob = choose(log_probs)
        best = scatter_rows(rows, new_best, batch, like=best)
        best_log_prob = scatter_rows(rows, new_log_prob, batch, like=best_log_prob)
        attention = scatter_rows(rows, new_attention, batch, like=attention)
        return (
            t + 1, best, best_log_prob, state, attention, tokens, weights, finished, lengths,
            scores,
        )  # fmt: skip

    def cond(t, *loop_vars):
        return tf.logical_and(t < length, tf.logical_not(tf.reduce_all(loop_vars[6])))

    loop_vars = (tf.constant(0), best, best_log_prob, state, attention, tokens, weights)
    loop_vars += (finished, lengths, scores)
    *_, tokens, weights, _, lengths, scores = tf.while_loop(cond, body, loop_vars)
    return DecodeResult(tokens, lengths, scores, weights)
