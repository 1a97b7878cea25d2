"""The training loss: token-level negative log-likelihood over non-PAD targets.

Computed from the logits without materialising the log-softmax: with `lse = logsumexp(z)`,
`-log p(y) = lse - z_y` and the label-smoothing term `-mean_v log p(v) = lse - mean(z)`. One
pass over the `(tokens, V)` logits instead of several; the maths is the same.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import keras
import tensorflow as tf
from keras import ops

from keras_nmt.special_ids import PAD_ID


class TokenLosses(NamedTuple):
    """Per-token values, each shaped like the labels: `loss`, the cross-entropy against the
    smoothed target distribution; `nll`, the plain negative log-likelihood (for perplexity);
    `correct`, whether the label has the highest logit (for accuracy)."""

    loss: tf.Tensor
    nll: tf.Tensor
    correct: tf.Tensor


class TokenSums(NamedTuple):
    """Sums over a set of non-PAD target tokens, each a scalar: `loss`, of the token losses
    (label smoothing included); `nll`, of the plain negative log-likelihoods; `correct`, the
    tokens whose label has the highest logit; `tokens`, how many there are. The training and
    evaluation logs are their ratios (`loss / tokens`...), so they add up over batches and
    replicas."""

    loss: Any
    nll: Any
    correct: Any
    tokens: Any

    @classmethod
    def of(cls, losses: TokenLosses) -> TokenSums:
        """The float32 sums of `losses`, of the non-PAD tokens only."""
        return cls(
            loss=tf.reduce_sum(losses.loss),
            nll=tf.reduce_sum(losses.nll),
            correct=tf.reduce_sum(tf.cast(losses.correct, tf.float32)),
            tokens=tf.cast(tf.size(losses.nll), tf.float32),
        )

    @classmethod
    def zeros(cls) -> TokenSums:
        return cls(*[tf.zeros([], tf.float32)] * len(cls._fields))

    def plus(self, other: TokenSums) -> TokenSums:
        """The field-wise sum (a tuple's `+` would concatenate)."""
        return TokenSums(*(mine + theirs for mine, theirs in zip(self, other)))


def token_losses(labels, logits, label_smoothing: float = 0.0) -> TokenLosses:
    """Per-token losses of `labels` `(...)` under `logits` `(..., V)`, with the target
    distribution smoothed by `label_smoothing` (uniform mass over the vocabulary, as in
    Szegedy et al. 2016). The maximum logit, found once, serves both the log-sum-exp and
    the accuracy."""
    logits = ops.cast(logits, "float32")
    labels = ops.cast(labels, "int32")
    top = tf.stop_gradient(ops.max(logits, axis=-1))
    lse = top + ops.log(ops.sum(ops.exp(logits - top[..., None]), axis=-1))
    label_logits = tf.gather(logits, labels, batch_dims=len(labels.shape))
    nll = lse - label_logits
    correct = ops.greater_equal(label_logits, top)
    if not label_smoothing:
        return TokenLosses(nll, nll, correct)
    smooth = lse - ops.mean(logits, axis=-1)
    return TokenLosses((1.0 - label_smoothing) * nll + label_smoothing * smooth, nll, correct)


def token_nll(labels, logits, label_smoothing: float = 0.0):
    """Per-token cross-entropy `(batch, T)` of `labels` `(batch, T)` under `logits`
    `(batch, T, V)`, with the target distribution smoothed by `label_smoothing`."""
    return token_losses(labels, logits, label_smoothing).loss


@keras.saving.register_keras_serializable(package="keras_nmt")
class MaskedNLL(keras.losses.Loss):
    """Mean token NLL over the non-PAD positions of the batch (PAD = 0 in `y_true`).

    Every real token weighs the same, whatever the sentence lengths in the batch. This is the
    loss `Seq2Seq.compile` takes (it sets the label smoothing of `fit`); `Seq2Seq.train_step`
    computes the same value with `token_losses` on the non-PAD positions only, over the
    global batch.

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
