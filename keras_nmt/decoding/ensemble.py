"""`ensemble_step`: several models' step functions as one, for any decoding strategy.

The ensemble's distribution is the mean of the models' probabilities, returned as its log:
`log p(y) = logsumexp_k(log p_k(y)) - log K`. That is a mixture, a proper distribution: beam
scores and force-decoding scores stay log-probabilities of the one model the ensemble is,
and a token that any model finds likely stays possible. (The mean of the log-probabilities,
the other common choice, is a geometric mean that sums to less than 1 unless renormalised
at every step, and one model's -inf vetoes a token.)
"""

from __future__ import annotations

from collections.abc import Sequence

import tensorflow as tf

from keras_nmt.decoding.step import StepFn


def ensemble_step(steps: Sequence[StepFn]) -> StepFn:
    """One step function over a tuple of states, one per model in `steps` (all over the same
    target vocabulary, fed the same tokens).

    Returns:
        `step(tokens (batch,), states) -> (log_probs (batch, V), new_states, attention)`:
        the log of the mean of the models' probabilities, each model's new state, and the
        first model's attention `(batch, S)` (the models may tokenize the source apart).
    """
    if not steps:
        raise ValueError("ensemble_step: expected at least one step function")
    if len(steps) == 1:
        return steps[0]

    def step(tokens, states):
        outputs = [model_step(tokens, state) for model_step, state in zip(steps, states)]
        log_probs = tf.stack([tf.cast(lp, tf.float32) for lp, _, _ in outputs])  # (K, batch, V)
        mixed = tf.reduce_logsumexp(log_probs, axis=0) - tf.math.log(float(len(steps)))
        return mixed, tuple(new for _, new, _ in outputs), outputs[0][2]

    return step
