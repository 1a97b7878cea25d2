"""The training loss: token-level negative log-likelihood over non-PAD targets."""

from __future__ import annotations

import keras
from keras import ops

from keras_nmt.tokenizer import PAD_ID


def token_nll(labels, logits, label_smoothing: float = 0.0):
    """Per-token cross-entropy `(batch, T)` of `labels` `(batch, T)` under `logits`
    `(batch, T, V)`, with the target distribution smoothed by `label_smoothing` (uniform
    mass over the vocabulary, as in Szegedy et al. 2016)."""
    log_probs = ops.log_softmax(ops.cast(logits, "float32"), axis=-1)
    nll = -ops.squeeze(
        ops.take_along_axis(log_probs, ops.expand_dims(ops.cast(labels, "int32"), -1), axis=-1),
        -1,
    )
    if label_smoothing:
        smooth = -ops.mean(log_probs, axis=-1)
        nll = (1.0 - label_smoothing) * nll + label_smoothing * smooth
    return nll


class MaskedNLL(keras.losses.Loss):
    """Mean token NLL over the non-PAD positions of the batch (PAD = 0 in `y_true`).

    Every real token weighs the same, whatever the sentence lengths in the batch.

    Args:
        label_smoothing: in [0, 1).
    """

    def __init__(self, label_smoothing: float = 0.0, name: str = "masked_nll", **kwargs):
        super().__init__(name=name, **kwargs)
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(
                f"label_smoothing: expected a value in [0, 1), received {label_smoothing}"
            )
        self.label_smoothing = label_smoothing

    def call(self, y_true, y_pred):
        mask = ops.cast(ops.not_equal(y_true, PAD_ID), "float32")
        nll = token_nll(y_true, y_pred, self.label_smoothing)
        return ops.sum(nll * mask) / ops.maximum(ops.sum(mask), 1.0)

    def get_config(self):
        return {**super().get_config(), "label_smoothing": self.label_smoothing}
