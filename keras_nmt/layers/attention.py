"""Attention over the encoder outputs: Bahdanau (additive) and Luong (dot, general, concat);
Bahdanau's score and Luong's `concat` are one `AdditiveScore`.

Both classes split the work in two, so nothing per-sentence is recomputed at every step:
- `keys(memory)`: the memory-side projection, computed once per sentence;
- `call(query, keys, memory, mask)`: the scores of one decoder state against every source
  position, a softmax masked over source padding, and the context vector.
Neither keeps any per-call tensor on `self`.
"""

from __future__ import annotations

import keras
from keras import ops


def masked_softmax(scores, mask):
    """Softmax over the last axis of `scores` `(batch, S)`, zero where `mask` is False."""
    scores = ops.where(mask, scores, ops.full_like(scores, -1e9))
    return ops.softmax(scores, axis=-1)


def attend(scores, memory, mask):
    """`scores` `(batch, S)`, `memory` `(batch, S, D)` -> `(context (batch, D),
    weights (batch, S))`."""
    weights = masked_softmax(scores, mask)
    context = ops.einsum("bs,bsd->bd", weights, memory)
    return context, weights


class AdditiveScore(keras.layers.Layer):
    """The additive score of a query against every key, `v^T tanh(W_q q [+ b] + W_k k_s)`,
    which Bahdanau attention (with the bias `b`) and Luong's `concat` (without) share.

    Args:
        units: width of the additive projection space.
        query_bias: whether the query projection has a bias `b`.

    `keys(memory)`: the projected keys `W_k k_s` `(batch, S, units)` of the encoder outputs
    `(batch, S, D)`, computed once per sentence.

    Call arguments:
        query: `(batch, Q)` decoder state.
        keys: `(batch, S, units)` from `keys(memory)`.

    Returns:
        Scores `(batch, S)`.
    """

    def __init__(self, units: int, query_bias: bool = True, **kwargs):
        super().__init__(**kwargs)
        if not units or units < 1:
            raise ValueError(f"units: expected >= 1, received {units}")
        self.units = units
        self.query_bias = query_bias
        self.query_dense = keras.layers.Dense(units, use_bias=query_bias, name="query")
        self.key_dense = keras.layers.Dense(units, use_bias=False, name="key")
        self.score_dense = keras.layers.Dense(1, use_bias=False, name="score")

    def build(self, query_shape, memory_shape):
        self.query_dense.build(query_shape)
        self.key_dense.build(memory_shape)
        self.score_dense.build((None, None, self.units))
        self.built = True

    def keys(self, memory):
        """`(batch, S, D)` -> `(batch, S, units)`."""
        return self.key_dense(memory)

    def call(self, query, keys):
        projected = ops.expand_dims(self.query_dense(query), 1)  # (batch, 1, units)
        return ops.squeeze(self.score_dense(ops.tanh(projected + keys)), -1)  # (batch, S)

    def get_config(self):
        return {**super().get_config(), "units": self.units, "query_bias": self.query_bias}


class BahdanauAttention(keras.layers.Layer):
    """Additive attention, Bahdanau et al. 2015 (arXiv:1409.0473), section 3.1 / appendix A.1.2.

    `score(q, k_s) = v^T tanh(W_q q + W_k k_s + b)` (an `AdditiveScore`). Keras's
    `AdditiveAttention` has no `W_q` and `W_k`: this layer owns its projections.

    Args:
        units: width of the additive projection space.

    Call arguments:
        query: `(batch, Q)` decoder state.
        keys: `(batch, S, units)` from `keys(memory)`.
        memory: `(batch, S, D)` encoder outputs.
        mask: `(batch, S)` bool, True at real source tokens.

    Returns:
        `(context (batch, D), weights (batch, S))`.
    """

    def __init__(self, units: int, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.additive = AdditiveScore(units, query_bias=True, name="additive")  # checks units

    def build(self, query_shape, memory_shape):
        self.additive.build(query_shape, memory_shape)
        self.built = True

    def keys(self, memory):
        """`(batch, S, D)` -> `(batch, S, units)`."""
        return self.additive.keys(memory)

    def call(self, query, keys, memory, mask):
        return attend(self.additive(query, keys), memory, mask)

    def get_config(self):
        return {**super().get_config(), "units": self.units}


class LuongAttention(keras.layers.Layer):
    """Multiplicative and concat attention, Luong et al. 2015 (arXiv:1508.04025), section 3.1.

    - `dot`: `score(h_t, h_s) = h_t . h_s` (needs equal widths);
    - `general`: `score(h_t, h_s) = h_t . (W_a h_s)`;
    - `concat`: `score(h_t, h_s) = v_a^T tanh(W_a [h_t; h_s])`, computed as
      `v_a^T tanh(W_t h_t + W_s h_s)`, the same matrix split in two (an `AdditiveScore`
      without bias).

    Args:
        score: `"dot"`, `"general"` or `"concat"`.
        units: width of the concat projection (ignored by the other two).

    Call arguments and returns: as `BahdanauAttention`; `keys` has shape `(batch, S, Q)`
    for `dot` and `general`, `(batch, S, units)` for `concat`.
    """

    SCORES = ("dot", "general", "concat")

    def __init__(self, score: str = "general", units: int | None = None, **kwargs):
        super().__init__(**kwargs)
        if score not in self.SCORES:
            raise ValueError(f"score: expected one of {self.SCORES}, received {score!r}")
        if score == "concat" and not units:
            raise ValueError(f"units: the concat score needs a positive width, received {units!r}")
        self.score = score
        self.units = units
        self.key_dense = None  # `general`'s W_a, made in `build` (its width is the query's)
        self.additive = None
        if score == "concat":
            self.additive = AdditiveScore(units, query_bias=False, name="additive")

    def build(self, query_shape, memory_shape):
        query_dim, memory_dim = query_shape[-1], memory_shape[-1]
        if self.score == "dot" and query_dim != memory_dim:
            raise ValueError(
                "dot attention: expected query and memory of one width, received "
                f"{query_dim} and {memory_dim}"
            )
        if self.score == "general":
            self.key_dense = keras.layers.Dense(query_dim, use_bias=False, name="key")
            self.key_dense.build(memory_shape)
        elif self.score == "concat":
            self.additive.build(query_shape, memory_shape)
        self.built = True

    def keys(self, memory):
        """`(batch, S, D)` -> `(batch, S, Q)` or `(batch, S, units)`."""
        if self.score == "dot":
            return memory
        if self.score == "general":
            return self.key_dense(memory)
        return self.additive.keys(memory)

    def call(self, query, keys, memory, mask):
        if self.score == "concat":
            scores = self.additive(query, keys)
        else:
            scores = ops.einsum("bq,bsq->bs", query, keys)  # (batch, S)
        return attend(scores, memory, mask)

    def get_config(self):
        return {**super().get_config(), "score": self.score, "units": self.units}


def make_attention(kind: str, units: int) -> keras.layers.Layer:
    """`"bahdanau"` or a Luong score name (`"dot"`, `"general"`, `"concat"`)."""
    if kind == "bahdanau":
        return BahdanauAttention(units, name="attention")
    return LuongAttention(kind, units, name="attention")
