"""Metrics over non-PAD target tokens, accumulated over an epoch."""

from __future__ import annotations

import keras
from keras import ops

from keras_nmt.losses import token_nll
from keras_nmt.tokenizer import PAD_ID


def _correct(y_true, y_pred):
    """1.0 where the argmax of `y_pred` `(batch, T, V)` equals `y_true` `(batch, T)`."""
    predicted = ops.argmax(y_pred, axis=-1)
    return ops.cast(ops.equal(predicted, ops.cast(y_true, predicted.dtype)), "float32")


class _TokenMetric(keras.metrics.Metric):
    """Accumulates `per_token(y_true, y_pred)` `(batch, T)` over non-PAD tokens, and their
    number."""

    def __init__(self, per_token, name, **kwargs):
        super().__init__(name=name, **kwargs)
        self.per_token = per_token
        self.total = self.add_variable(shape=(), initializer="zeros", name="total")
        self.tokens = self.add_variable(shape=(), initializer="zeros", name="tokens")

    def update_state(self, y_true, y_pred, sample_weight=None):
        mask = ops.cast(ops.not_equal(y_true, PAD_ID), "float32")
        self.total.assign_add(ops.sum(self.per_token(y_true, y_pred) * mask))
        self.tokens.assign_add(ops.sum(mask))

    def reset_state(self):
        self.total.assign(0.0)
        self.tokens.assign(0.0)


class Perplexity(_TokenMetric):
    """exp(mean NLL per non-PAD token), without label smoothing."""

    def __init__(self, name="perplexity", **kwargs):
        super().__init__(token_nll, name=name, **kwargs)

    def result(self):
        return ops.exp(self.total / ops.maximum(self.tokens, 1.0))


class TokenAccuracy(_TokenMetric):
    """The share of non-PAD target tokens whose argmax prediction is right."""

    def __init__(self, name="token_accuracy", **kwargs):
        super().__init__(_correct, name=name, **kwargs)

    def result(self):
        return self.total / ops.maximum(self.tokens, 1.0)
