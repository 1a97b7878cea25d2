"""Word dropout: in training, whole tokens' embeddings are zeroed at random.

Dropping a token's every feature at once (Gal and Ghahramani, 2016; Sennrich and Zhang,
2019, for low-resource translation) hides the token from the model, where ordinary dropout
drops features independently and leaves every token partly visible.
"""

from __future__ import annotations

import keras


def word_dropout_layer(rate: float) -> keras.layers.Dropout:
    """Dropout of whole tokens: on `(batch, length, features)` embeddings, one draw per
    token zeroes all its features or scales them all by `1 / (1 - rate)`. With `rate` 0 the
    layer is the identity and has no variables (no seed state)."""
    return keras.layers.Dropout(rate, noise_shape=(None, None, 1), name="word_dropout")
