"""The recurrent units of the encoder and the decoder: Keras's LSTM and GRU, and the
layer-normalized LSTM cell (Ba, Kiros and Hinton, 2016, section 3.1):

    z = LN_x(x W) + LN_h(h U) + b,   i, f, g, o = split(z)
    c' = sigmoid(f) c + sigmoid(i) tanh(g),   h' = sigmoid(o) tanh(LN_c(c'))

Each LN has its own gain and bias; the input and recurrent projections are normalized apart
and the cell before its output, as in the paper.
"""

from __future__ import annotations

import keras
from keras import ops

from keras_nmt.config import RNN_TYPES


@keras.saving.register_keras_serializable(package="keras_nmt")
class LayerNormLSTMCell(keras.layers.LSTMCell):
    """An LSTM cell with layer normalization; `keras.layers.LSTMCell`'s weights (the
    forget gate's bias starts at 1) plus three `LayerNormalization`s. Keras's `dropout`
    and `recurrent_dropout` arguments are not supported.

    Call arguments and returns as `keras.layers.LSTMCell`: `inputs (batch, input_dim)`,
    `states [h, c]` each `(batch, units)` -> `(h', [h', c'])`.
    """

    def __init__(self, units: int, epsilon: float = 1e-5, **kwargs):
        if kwargs.get("dropout") or kwargs.get("recurrent_dropout"):
            raise ValueError("LayerNormLSTMCell: dropout and recurrent_dropout are not supported")
        super().__init__(units, **kwargs)
        self.epsilon = epsilon
        self.input_norm = keras.layers.LayerNormalization(epsilon=epsilon, name="input_norm")
        self.recurrent_norm = keras.layers.LayerNormalization(
            epsilon=epsilon, name="recurrent_norm"
        )
        self.cell_norm = keras.layers.LayerNormalization(epsilon=epsilon, name="cell_norm")

    def build(self, input_shape):
        super().build(input_shape)
        self.input_norm.build((None, 4 * self.units))
        self.recurrent_norm.build((None, 4 * self.units))
        self.cell_norm.build((None, self.units))

    def call(self, inputs, states, training=False):
        h, c = states
        z = self.input_norm(ops.matmul(inputs, self.kernel)) + self.recurrent_norm(
            ops.matmul(h, self.recurrent_kernel)
        )
        if self.use_bias:
            z = z + self.bias
        i, f, g, o = ops.split(z, 4, axis=-1)
        gate = self.recurrent_activation
        c = gate(f) * c + gate(i) * self.activation(g)
        h = gate(o) * self.activation(self.cell_norm(c))
        return h, [h, c]

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon}


def recurrent_cell(rnn_type: str, units: int, layer_norm: bool = False, **kwargs):
    """One step (the decoder's): the cell of `rnn_type` (`"lstm"` or `"gru"`),
    layer-normalized if asked (LSTM only)."""
    _check(rnn_type, layer_norm)
    if layer_norm:
        return LayerNormLSTMCell(units, **kwargs)
    cell = keras.layers.LSTMCell if rnn_type == "lstm" else keras.layers.GRUCell
    return cell(units, **kwargs)


def recurrent_layer(
    rnn_type: str, units: int, layer_norm: bool = False, **kwargs
) -> keras.layers.Layer:
    """A whole sequence (the encoder's): a Keras LSTM or GRU layer, or an RNN of
    `LayerNormLSTMCell`s, that returns its sequence and its final states."""
    _check(rnn_type, layer_norm)
    options = dict(return_sequences=True, return_state=True, **kwargs)
    if layer_norm:
        return keras.layers.RNN(LayerNormLSTMCell(units, name="lstm_cell"), **options)
    layer = keras.layers.LSTM if rnn_type == "lstm" else keras.layers.GRU
    return layer(units, **options)


def _check(rnn_type: str, layer_norm: bool) -> None:
    if rnn_type not in RNN_TYPES:
        raise ValueError(f"rnn_type: expected one of {RNN_TYPES}, received {rnn_type!r}")
    if layer_norm and rnn_type != "lstm":
        raise ValueError(f"layer_norm: only the LSTM cell has it, received {rnn_type!r}")
