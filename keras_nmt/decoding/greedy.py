"""Greedy decoding: the most probable token at every step, in one tf.while_loop. The token a
step emits is `choose`'s pick (the most probable by default; `decoding.sampling` samples)."""

from __future__ import annotations

from collections.abc import Callable
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


# choose(log_probs (n, V), t) -> (token (n,) int32, its log-probability (n,) float32): the
# token each row emits at position t.
Chooser = Callable[[tf.Tensor, tf.Tensor], tuple[tf.Tensor, tf.Tensor]]


class _Decoded(NamedTuple):
    """What greedy search has emitted so far, for each of the `batch` sentences.

    tokens: `(batch, L)` int32, the tokens emitted, then PAD.
    weights: `(batch, L, S)`, the attention weights of each emitted token (0 past the end).
    finished: `(batch,)` bool.
    lengths: `(batch,)` int32, the tokens emitted before EOS.
    scores: `(batch,)` float32, the sum of the emitted tokens' log-probabilities.
    """

    tokens: tf.Tensor
    weights: tf.Tensor
    finished: tf.Tensor
    lengths: tf.Tensor
    scores: tf.Tensor


class _NextStep(NamedTuple):
    """The step after each sentence's last token (zeros for the sentences not stepped).

    token: `(batch,)` int32, its next token (the most probable, or `choose`'s pick).
    log_prob: `(batch,)` float32, that token's log-probability.
    state: the step state, leaves `(batch, ...)`.
    attention: `(batch, S)`, the step's attention weights.
    """

    token: tf.Tensor
    log_prob: tf.Tensor
    state: Any
    attention: tf.Tensor


def greedy_search(
    step: StepFn,
    start_ids: tf.Tensor,
    initial_state: Any,
    end_id: int,
    max_lengths: tf.Tensor,
    choose: Chooser | None = None,
) -> DecodeResult:
    """Decodes greedily until every sentence has emitted `end_id` or reached its maximum.

    Args:
        step: the step function (see `keras_nmt.decoding`).
        start_ids: `(batch,)` int32, the first input token (BOS).
        initial_state: the step function's state for these sentences.
        end_id: the EOS id.
        max_lengths: `(batch,)` int32, the most tokens (EOS included) each sentence may emit.
        choose: picks each step's token (`Chooser`); None: the most probable.

    Returns:
        A `DecodeResult`.
    """
    max_lengths = tf.cast(max_lengths, tf.int32)
    length = tf.reduce_max(tf.concat([max_lengths, [0]], axis=0))
    choose = choose or best_token
    log_probs, state, attention = step(start_ids, initial_state)
    next_step = _NextStep(*choose(log_probs, tf.constant(0)), state, attention)
    decoded = _nothing_decoded(max_lengths, length, attention)

    def body(t, decoded, next_step):
        decoded, token = _emitted(decoded, next_step, t, end_id, max_lengths)
        next_step = _next_step(step, next_step, token, decoded.finished, choose, t + 1)
        return t + 1, decoded, next_step

    def cond(t, decoded, next_step):
        return tf.logical_and(t < length, tf.logical_not(tf.reduce_all(decoded.finished)))

    _, decoded, _ = tf.while_loop(cond, body, (tf.constant(0), decoded, next_step))
    return DecodeResult(decoded.tokens, decoded.lengths, decoded.scores, decoded.weights)


def best_token(log_probs, t=None):
    """`(n, V)` -> the best token `(n,)` and its log-probability `(n,)` float32 (a `Chooser`;
    `t` is unused)."""
    best = tf.argmax(log_probs, axis=-1, output_type=tf.int32)
    return best, tf.cast(tf.gather(log_probs, best, axis=1, batch_dims=1), tf.float32)


def _nothing_decoded(max_lengths, length, attention) -> _Decoded:
    """Nothing emitted yet, in buffers of `length` tokens; a sentence of maximum length 0 is
    finished already."""
    batch = tf.shape(max_lengths)[0]
    return _Decoded(
        tokens=tf.fill([batch, length], PAD_ID),
        weights=tf.zeros([batch, length, tf.shape(attention)[1]], attention.dtype),
        finished=tf.less_equal(max_lengths, 0),
        lengths=tf.zeros([batch], tf.int32),
        scores=tf.zeros([batch], tf.float32),
    )


def _emitted(decoded: _Decoded, next_step: _NextStep, t, end_id: int, max_lengths):
    """`(decoded, token (batch,))` after each sentence emits its best token at position `t`:
    PAD for a finished sentence, which keeps its length and score. A sentence finishes at
    EOS (which adds to its score but not to its length) or at its maximum length."""
    finished = decoded.finished
    token = tf.where(finished, PAD_ID, next_step.token)
    ended = tf.logical_and(tf.logical_not(finished), tf.equal(next_step.token, end_id))
    attention = tf.where(finished[:, None], 0.0, next_step.attention)
    decoded = _Decoded(
        tokens=write_at(decoded.tokens, t, token),
        weights=write_at(decoded.weights, t, attention),
        finished=tf.logical_or(tf.logical_or(finished, ended), t + 1 >= max_lengths),
        lengths=decoded.lengths + tf.cast(tf.logical_not(tf.logical_or(finished, ended)), tf.int32),
        scores=decoded.scores + tf.where(finished, 0.0, next_step.log_prob),
    )
    return decoded, token


def _next_step(step: StepFn, previous: _NextStep, token, finished, choose: Chooser, t) -> _NextStep:
    """The step after `token` `(batch,)` for the sentences not `finished` `(batch,)` only,
    and the tokens `choose` picks for position `t`."""
    batch = tf.shape(finished)[0]
    rows = active_rows(tf.logical_not(finished))
    log_probs, state, attention = step_rows(
        step, tf.gather(token, rows), previous.state, rows, rows, batch
    )
    best, log_prob = choose(log_probs, t)
    return _NextStep(
        token=scatter_rows(rows, best, batch, like=previous.token),
        log_prob=scatter_rows(rows, log_prob, batch, like=previous.log_prob),
        state=state,
        attention=scatter_rows(rows, attention, batch, like=previous.attention),
    )
