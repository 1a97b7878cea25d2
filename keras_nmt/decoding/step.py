"""The step function type, and wrappers around step functions."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import tensorflow as tf

# step(tokens (batch,), state) -> (log_probs (batch, V), new_state, attention (batch, S))
StepFn = Callable[[tf.Tensor, Any], tuple[tf.Tensor, Any, tf.Tensor]]


def forbid_tokens(step: StepFn, token_ids: Sequence[int]) -> StepFn:
    """A step function whose log-probabilities are -inf at `token_ids` (e.g. PAD and BOS,
    which a decoder must never emit). The other entries are unchanged, so scores stay the
    model's log-probabilities."""

    def forbidden_step(tokens, state):
        log_probs, state, attention = step(tokens, state)
        vocab = log_probs.shape[-1]
        if vocab is None:
            raise ValueError(
                "forbid_tokens: expected log-probabilities of a static vocabulary size"
            )
        # A constant mask, built once when the decode loop is traced.
        forbidden = tf.constant(np.isin(np.arange(vocab), list(token_ids)))
        minus_inf = tf.constant(-float("inf"), log_probs.dtype)
        return tf.where(forbidden, minus_inf, log_probs), state, attention

    return forbidden_step
