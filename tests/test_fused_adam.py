"""FusedAdam makes the same updates as Keras's Adam."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_nmt.training.optimizer import FusedAdam


def apply_function(optimizer, variables):
    @tf.function
    def apply(gradients):
        optimizer.apply(gradients, variables)

    return apply


@pytest.mark.parametrize("clipnorm", [None, 0.1])
def test_fused_adam_equals_keras_adam(clipnorm):
    rng = np.random.default_rng(0)
    initial = [rng.normal(size=(7, 5)).astype("float32"), rng.normal(size=(5,)).astype("float32")]
    gradients = [
        [rng.normal(size=w.shape).astype("float32") * scale for w in initial]
        for scale in (1.0, 0.01, 10.0, 1.0)
    ]
    results = []
    for kind in (keras.optimizers.Adam, FusedAdam):
        optimizer = kind(0.01, global_clipnorm=clipnorm)
        variables = [keras.Variable(w) for w in initial]
        optimizer.build(variables)

        step = apply_function(optimizer, variables)
        for grads in gradients:
            step([tf.constant(g) for g in grads])
        results.append(([v.numpy() for v in variables], [v.numpy() for v in optimizer.variables]))
    (adam_weights, adam_slots), (fused_weights, fused_slots) = results
    moved = max(np.max(np.abs(w - i)) for w, i in zip(adam_weights, initial))
    assert moved > 0.01
    # Same formula, other rounding (b2 v + (1 - b2) g^2 against v + (g^2 - v)(1 - b2)).
    for a, b in zip(adam_weights, fused_weights):
        np.testing.assert_allclose(a, b, atol=2e-6)
    for a, b in zip(adam_slots, fused_slots):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-7)
    assert len(adam_slots) == len(fused_slots) == 2 + 2 * len(initial)
