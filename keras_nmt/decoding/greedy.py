"""Greedy decoding: the most probable token at every step, in one tf.while_loop."""

from __future__ import annotations

from typing import Any, NamedTuple

import tensorflow as tf

from keras_nmt.decoding.rows import active_rows, scatter_rows, step_rows, write_at
from keras_nmt.decoding.step import StepFn
from keras_nmt.special_ids import PAD_ID


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
