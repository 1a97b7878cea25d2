"""Wrappers around step functions."""

from __future__ import annotations

from collections.abc import Sequence

import tensorflow as tf

from keras_nmt.decoding.greedy import StepFn


def forbid_tokens(step: StepFn, token_ids: Sequence[int]) -> StepFn:
    """A step function whose log-probabilities are -inf at `token_ids` (e.g. PAD and BOS,
    which a decoder must never emit). The other entries are unchanged, so scores stay the
    model's log-probabilities."""

    def forbidden_step(tokens, state):
        log_probs, state, attention = step(tokens, state)
        vocab = tf.shape(log_probs)[-1]
        forbidden = tf.reduce_any(
            tf.equal(tf.range(vocab)[:, None], tf.constant(list(token_ids))[None, :]), axis=1
        )
        return (
            tf.where(forbidden, tf.constant(-float("inf"), log_probs.dtype), log_probs),
            state,
            attention,
        )

    return forbidden_step
