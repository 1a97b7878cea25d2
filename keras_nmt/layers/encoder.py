"""The source encoder: embedding and a stack of (bi)directional recurrent layers."""

from __future__ import annotations

import keras

from keras_nmt.layers.recurrent import recurrent_layer
from keras_nmt.layers.word_dropout import word_dropout_layer
from keras_nmt.special_ids import PAD_ID


class Encoder(keras.layers.Layer):
    """Embeds a padded source and runs `num_layers` recurrent layers over it.

    Args:
        vocab_size: source vocabulary size.
        embedding_dim: embedding width.
        units: output width of each layer; a bidirectional layer gives `units // 2` to
            each direction and concatenates them.
        num_layers: number of stacked recurrent layers.
        rnn_type: `"lstm"` or `"gru"`.
        bidirectional: run each layer in both directions.
        dropout: dropout rate on the embeddings and between layers.
        word_dropout: in training, the probability of zeroing a token's whole embedding.
        layer_norm: layer-normalized LSTM cells (`recurrent.LayerNormLSTMCell`).

    Call arguments:
        source: int tensor of shape `(batch, S)`, padded with PAD = 0 (every row holds at
            least one non-PAD token, its EOS).

    Returns:
        `(outputs, final_states)`: `outputs` of shape `(batch, S, units)` (zero past each
        row's length), and `final_states`, a list with one entry per layer, each a list
        with one entry per direction (forward first), each the list of the cell's state
        tensors (`[h, c]` for an LSTM, `[h]` for a GRU) of shape `(batch, units_per_direction)`.
    """

    def __init__(
        self,
        vocab_size: int,
        embedding_dim: int,
        units: int,
        num_layers: int = 1,
        rnn_type: str = "lstm",
        bidirectional: bool = True,
        dropout: float = 0.0,
        word_dropout: float = 0.0,
        layer_norm: bool = False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if bidirectional and units % 2:
            raise ValueError(
                f"units: a bidirectional encoder needs an even number, received {units}"
            )
        if num_layers < 1:
            raise ValueError(f"num_layers: expected >= 1, received {num_layers}")
        self.vocab_size = vocab_size
        self.embedding_dim = embedding_dim
        self.units = units
        self.num_layers = num_layers
        self.rnn_type = rnn_type
        self.bidirectional = bidirectional
        self.dropout = dropout
        self.embedding = keras.layers.Embedding(vocab_size, embedding_dim, name="embedding")
        self.word_dropout = word_dropout
        self.layer_norm = layer_norm
        self.dropout_layer = keras.layers.Dropout(dropout)
        self.word_dropout_layer = word_dropout_layer(word_dropout)
        per_direction = units // 2 if bidirectional else units
        self.rnn_layers = []
        for index in range(num_layers):
            layer = recurrent_layer(
                rnn_type, per_direction, layer_norm=layer_norm, name=f"{rnn_type}_{index}"
            )
            if bidirectional:
                layer = keras.layers.Bidirectional(layer, name=f"bi{rnn_type}_{index}")
            self.rnn_layers.append(layer)

    @property
    def states_per_cell(self) -> int:
        return 2 if self.rnn_type == "lstm" else 1

    def build(self, source_shape):
        self.embedding.build(source_shape)
        width = self.embedding_dim
        for layer in self.rnn_layers:
            layer.build((source_shape[0], source_shape[1], width))
            width = self.units
        self.built = True

    def call(self, source, training=False):
        mask = keras.ops.not_equal(source, PAD_ID)  # (batch, S)
        embedded = self.word_dropout_layer(self.embedding(source), training=training)
        outputs = self.dropout_layer(embedded, training=training)
        final_states = []
        n = self.states_per_cell
        for index, layer in enumerate(self.rnn_layers):
            if index > 0:
                outputs = self.dropout_layer(outputs, training=training)
            outputs, *states = layer(outputs, mask=mask, training=training)
            directions = [states[:n], states[n:]] if self.bidirectional else [states]
            final_states.append(directions)
        # Keras leaves the outputs at padded positions unspecified for some paths: zero them.
        outputs = outputs * keras.ops.expand_dims(keras.ops.cast(mask, outputs.dtype), -1)
        return outputs, final_states

    def compute_output_shape(self, source_shape):
        batch, length = source_shape
        per_direction = self.units // 2 if self.bidirectional else self.units
        directions = 2 if self.bidirectional else 1
        state = [(batch, per_direction)] * self.states_per_cell
        return (batch, length, self.units), [[state] * directions] * self.num_layers

    def get_config(self):
        return {
            **super().get_config(),
            "vocab_size": self.vocab_size,
            "embedding_dim": self.embedding_dim,
            "units": self.units,
            "num_layers": self.num_layers,
            "rnn_type": self.rnn_type,
            "bidirectional": self.bidirectional,
            "dropout": self.dropout,
            "word_dropout": self.word_dropout,
            "layer_norm": self.layer_norm,
        }
