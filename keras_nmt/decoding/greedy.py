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
    log_probs, state, attention = step(start_ids, initial_state)
    tokens = tf.fill([batch, length], PAD_ID)
    weights = tf.zeros([batch, length, tf.shape(attention)[1]], attention.dtype)
    finished = tf.less_equal(max_lengths, 0)
    lengths = tf.zeros([batch], tf.int32)
    scores = tf.zeros([batch], tf.float32)

    def body(t, log_probs, state, attention, tokens, weights, finished, lengths, scores):
        best = tf.argmax(log_probs, axis=-1, output_type=tf.int32)  # (batch,)
        token = tf.where(finished, PAD_ID, best)
        tokens = write_at(tokens, t, token)
        weights = write_at(weights, t, tf.where(finished[:, None], 0.0, attention))
        best_log_prob = tf.gather(log_probs, best, axis=1, batch_dims=1)
        scores += tf.where(finished, 0.0, tf.cast(best_log_prob, tf.float32))
        ended = tf.logical_and(tf.logical_not(finished), tf.equal(best, end_id))
        lengths += tf.cast(tf.logical_not(tf.logical_or(finished, ended)), tf.int32)
        finished = tf.logical_or(tf.logical_or(finished, ended), t + 1 >= max_lengths)
        log_probs, state, attention = step(token, state)
        return t + 1, log_probs, state, attention, tokens, weights, finished, lengths, scores

    def cond(t, *loop_vars):
        return tf.logical_and(t < length, tf.logical_not(tf.reduce_all(loop_vars[5])))

    loop_vars = (
        tf.constant(0),
        log_probs,
        state,
        attention,
        tokens,
        weights,
        finished,
        lengths,
        scores,
    )
    _, _, _, _, tokens, weights, _, lengths, scores = tf.while_loop(cond, body, loop_vars)
    return DecodeResult(tokens, lengths, scores, weights)
