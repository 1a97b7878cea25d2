"""Wrappers around step functions."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from keras_nmt.decoding.greedy import StepFn


def forbid_tokens(step: StepFn, token_ids: Sequence[int]) -> StepFn:
    """A step function whose log-probabilities are -inf at `token_ids` (e.g. PAD and BOS,
    which a decoder must never emit). The other entries are unchanged, so scores stay the
    model's log-probabilities."""

    def forbidden_step(tokens, state):
        log_probs, state, attention = step(tokens, state)
        vocab = log_probs.shape[-1]
        if vocab is not None:  # the usual case: a constant mask, built once at tracing
            forbidden = tf.constant(np.isin(np.arange(vocab), list(token_ids)))
        else:
            ids = tf.constant(list(token_ids), tf.int32)
            forbidden = tf.reduce_any(
                tf.equal(tf.range(tf.shape(log_probs)[-1])[:, None], ids[None, :]), axis=1
            )
        minus_inf = tf.constant(-float("inf"), log_probs.dtype)
        return tf.where(forbidden, minus_inf, log_probs), state, attention

    return forbidden_step
