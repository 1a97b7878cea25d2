"""Random sampling, for back-translation: each step draws its token from the model's
distribution (optionally its `top_k` most probable tokens only, sharpened or flattened by a
`temperature`), through `greedy_search`'s loop with a sampling `Chooser`.

Draws are TensorFlow's stateless random ops, seeded by `(seed, position)`: the same seed and
the same batch give the same translations on any run. A sentence's draws depend on the rows
decoding alongside it (a draw is made for the whole batch of rows still decoding), so the
same sentence in another batch may get another sample.
"""

from __future__ import annotations

from typing import NamedTuple

import tensorflow as tf

from keras_nmt.decoding.greedy import Chooser


class Sampling(NamedTuple):
    """How to sample.

    top_k: draw from the k most probable tokens only (0: the whole vocabulary).
    temperature: divides the log-probabilities before drawing (> 0; 1 samples the model's
        own distribution, lower is closer to greedy).
    seed: the random seed (an int, or a scalar integer tensor).
    """

    top_k: int = 0
    temperature: float = 1.0
    seed: int = 0


def sampler(sampling: Sampling) -> Chooser:
    """A `Chooser` drawing each row's token as `sampling` says; the log-probability returned
    is the model's (untempered) one of the drawn token, so scores stay log P(y)."""
    if sampling.top_k < 0:
        raise ValueError(f"top_k: expected >= 0 (0: the whole vocabulary), got {sampling.top_k}")
    if not sampling.temperature > 0:
        raise ValueError(f"temperature: expected > 0, got {sampling.temperature}")

    def choose(log_probs, t):
        log_probs = tf.cast(log_probs, tf.float32)
        logits = log_probs / sampling.temperature
        if sampling.top_k:
            k = tf.minimum(sampling.top_k, tf.shape(logits)[-1])
            kth = tf.math.top_k(logits, k).values[:, -1:]
            logits = tf.where(logits < kth, -float("inf"), logits)
        seed = tf.stack([tf.cast(sampling.seed, tf.int64), tf.cast(t, tf.int64)])
        token = tf.random.stateless_categorical(logits, 1, seed, dtype=tf.int32)[:, 0]
        return token, tf.gather(log_probs, token, axis=1, batch_dims=1)

    return choose
