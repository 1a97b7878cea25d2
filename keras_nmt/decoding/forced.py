"""`force_decode`: the log-probabilities a step function gives to known target sequences,
token by token, as a decoding strategy would have met them (the score of a given
translation under the model, or an ensemble)."""

from __future__ import annotations

from typing import Any

import tensorflow as tf

from keras_nmt.decoding.rows import write_at
from keras_nmt.decoding.step import StepFn
from keras_nmt.special_ids import PAD_ID


def force_decode(
    step: StepFn, start_ids: tf.Tensor, initial_state: Any, targets: tf.Tensor
) -> tf.Tensor:
    """Feeds `targets` through `step` and reads each target token's log-probability.

    Args:
        step: the step function (see `keras_nmt.decoding`).
        start_ids: `(batch,)` int32, the first input token (BOS).
        initial_state: the step function's state for these sentences.
        targets: `(batch, T)` int32, each target sequence with its EOS, then PAD; position
            t is predicted from the tokens before it.

    Returns:
        `(batch, T)` float32: `log p(targets[:, t] | targets[:, :t])`, and 0 at PAD.
    """
    batch, length = tf.shape(targets)[0], tf.shape(targets)[1]
    real = targets != PAD_ID

    def body(t, tokens, state, token_log_probs):
        log_probs, state, _ = step(tokens, state)
        target = targets[:, t]
        picked = tf.gather(tf.cast(log_probs, tf.float32), target, axis=1, batch_dims=1)
        token_log_probs = write_at(token_log_probs, t, tf.where(real[:, t], picked, 0.0))
        return t + 1, target, state, token_log_probs

    loop_vars = (tf.constant(0), start_ids, initial_state, tf.zeros([batch, length]))
    *_, token_log_probs = tf.while_loop(lambda t, *_: t < length, body, loop_vars)
    return token_log_probs
