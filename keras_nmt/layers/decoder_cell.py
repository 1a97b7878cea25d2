"""One decoder step: the unit of work that training, greedy and beam search all run.

previous target embedding [; previous attentional state (input feeding)]
  -> stacked recurrent cells -> h
  -> attention(h, encoder outputs) -> context
  -> attentional state tanh(W_c [h; context])      (Luong et al. 2015, eq. 5)
"""

from __future__ import annotations

import keras
from keras import ops

from keras_nmt.layers.attention import make_attention
from keras_nmt.layers.recurrent import recurrent_cell


class DecoderCell(keras.layers.Layer):
    """A stack of recurrent cells with attention and input feeding, one step at a time.

    Args:
        input_dim: width of the step input (the target embedding).
        memory_dim: width of the encoder outputs.
        units: width of each recurrent cell and of the attentional state.
        num_layers: number of stacked cells.
        rnn_type: `"lstm"` or `"gru"`.
        attention: `"bahdanau"`, `"dot"`, `"general"` or `"concat"`.
        attention_units: width of the additive attention space (defaults to `units`).
        input_feeding: concatenate the previous attentional state to the step input.
        dropout: dropout rate between stacked cells.
        layer_norm: layer-normalized LSTM cells (`recurrent.LayerNormLSTMCell`).

    State: a dict `{"rnn": [[h, c] or [h] per layer], "feed": (batch, units)}`; `feed` is the
    previous attentional state (zeros at the first step).

    Memory: a dict `{"values": (batch, S, memory_dim), "keys": (batch, S, K),
    "mask": (batch, S) bool}` built once per batch by `memory(...)`.

    Call arguments:
        inputs: `(batch, input_dim)`.
        state: the state above.
        memory: the memory above.

    Returns:
        `(output (batch, units), new_state, attention_weights (batch, S))`.
    """

    def __init__(
        self,
        input_dim: int,
        memory_dim: int,
        units: int,
        num_layers: int = 1,
        rnn_type: str = "lstm",
        attention: str = "general",
        attention_units: int | None = None,
        input_feeding: bool = True,
        dropout: float = 0.0,
        layer_norm: bool = False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if num_layers < 1:
            raise ValueError(f"num_layers: expected >= 1, received {num_layers}")
        self.input_dim = input_dim
        self.memory_dim = memory_dim
        self.units = units
        self.num_layers = num_layers
        self.rnn_type = rnn_type
        self.attention_kind = attention
        self.attention_units = attention_units or units
        self.input_feeding = input_feeding
        self.dropout = dropout
        self.layer_norm = layer_norm
        self.cells = [
            recurrent_cell(rnn_type, units, layer_norm=layer_norm, name=f"{rnn_type}_cell_{i}")
            for i in range(num_layers)
        ]
        self.attention = make_attention(attention, self.attention_units)
        self.attentional = keras.layers.Dense(
            units, activation="tanh", use_bias=False, name="attentional"
        )
        self.dropout_layer = keras.layers.Dropout(dropout)

    def build(self, input_shape=None):
        width = self.input_dim + (self.units if self.input_feeding else 0)
        for cell in self.cells:
            cell.build((None, width))
            width = self.units
        self.attention.build((None, self.units), (None, None, self.memory_dim))
        self.attentional.build((None, self.units + self.memory_dim))
        self.built = True

    def memory(self, encoder_outputs, mask):
        """The per-batch attention memory: values `(batch, S, D)`, keys, mask `(batch, S)`."""
        return {
            "values": encoder_outputs,
            "keys": self.attention.keys(encoder_outputs),
            "mask": mask,
        }

    def initial_state(self, rnn_states):
        """`rnn_states`: per layer, the cell's states `(batch, units)` (from the bridge)."""
        first = rnn_states[0][0]
        return {"rnn": [list(s) for s in rnn_states], "feed": ops.zeros_like(first)}

    def call(self, inputs, state, memory, training=False):
        x = inputs
        if self.input_feeding:
            x = ops.concatenate([x, state["feed"]], axis=-1)
        new_rnn = []
        for index, cell in enumerate(self.cells):
            if index > 0:
                x = self.dropout_layer(x, training=training)
            x, cell_state = cell(x, state["rnn"][index], training=training)
            new_rnn.append(list(cell_state))
        context, weights = self.attention(x, memory["keys"], memory["values"], memory["mask"])
        output = self.attentional(ops.concatenate([x, context], axis=-1))
        return output, {"rnn": new_rnn, "feed": output}, weights

    def get_config(self):
        return {
            **super().get_config(),
            "input_dim": self.input_dim,
            "memory_dim": self.memory_dim,
            "units": self.units,
            "num_layers": self.num_layers,
            "rnn_type": self.rnn_type,
            "attention": self.attention_kind,
            "attention_units": self.attention_units,
            "input_feeding": self.input_feeding,
            "dropout": self.dropout,
            "layer_norm": self.layer_norm,
        }
