"""The generator: attentional states to target-vocabulary logits."""

from __future__ import annotations

import keras
from keras import ops


class Generator(keras.layers.Layer):
    """A projection to the target vocabulary, optionally tied to the target embedding.

    Args:
        vocab_size: target vocabulary size.
        tied: reuse the target embedding matrix `(vocab_size, dim)`, transposed, as the
            projection kernel (passed to `call`); the layer then owns only its bias.

    Call arguments:
        inputs: `(..., dim)`.
        embeddings: the `(vocab_size, dim)` embedding matrix when `tied`, else None.

    Returns:
        Logits `(..., vocab_size)`, computed in float32 even under mixed precision (the
        layer's dtype policy is float32 unless `dtype` says otherwise).
    """

    def __init__(self, vocab_size: int, tied: bool = False, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.vocab_size = vocab_size
        self.tied = tied
        self.kernel = None
        self.bias = None

    def build(self, input_shape):
        if not self.tied:
            self.kernel = self.add_weight(
                name="kernel",
                shape=(input_shape[-1], self.vocab_size),
                initializer="glorot_uniform",
            )
        self.bias = self.add_weight(name="bias", shape=(self.vocab_size,), initializer="zeros")
        self.built = True

    def call(self, inputs, embeddings=None):
        if self.tied == (embeddings is None):
            raise ValueError(
                f"Generator(tied={self.tied}): expected embeddings "
                f"{'' if self.tied else 'not '}to be passed"
            )
        kernel = ops.transpose(embeddings) if self.tied else self.kernel
        inputs = ops.cast(inputs, self.compute_dtype)
        return ops.matmul(inputs, ops.cast(kernel, self.compute_dtype)) + self.bias

    def get_config(self):
        return {**super().get_config(), "vocab_size": self.vocab_size, "tied": self.tied}
