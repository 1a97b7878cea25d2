"""The decoder: target embedding, the decoder step, and the generator.

`call` runs the step over a whole target sequence (teacher forcing, for training);
`step` runs it once (for decoding). Both use the same `DecoderCell`, so the forward
pass is written once.
"""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import ops

from keras_nmt.layers.decoder_cell import DecoderCell
from keras_nmt.layers.generator import Generator
from keras_nmt.layers.word_dropout import word_dropout_layer


class Decoder(keras.layers.Layer):
    """Conditional language model over the target, one `DecoderCell` step at a time.

    Args:
        vocab_size: target vocabulary size.
        embedding_dim: target embedding width.
        memory_dim: width of the encoder outputs.
        units, num_layers, rnn_type, attention, attention_units, input_feeding, layer_norm:
            as in `DecoderCell`.
        dropout: dropout rate on the embeddings, between cells and on the attentional
            states before the generator.
        word_dropout: in training, the probability of zeroing a target token's whole
            embedding.
        tie_embeddings: reuse the target embedding matrix in the generator.
    """

    def __init__(
        self,
        vocab_size: int,
        embedding_dim: int,
        memory_dim: int,
        units: int,
        num_layers: int = 1,
        rnn_type: str = "lstm",
        attention: str = "general",
        attention_units: int | None = None,
        input_feeding: bool = True,
        dropout: float = 0.0,
        word_dropout: float = 0.0,
        tie_embeddings: bool = False,
        layer_norm: bool = False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.vocab_size = vocab_size
        self.embedding_dim = embedding_dim
        self.memory_dim = memory_dim
        self.units = units
        self.num_layers = num_layers
        self.rnn_type = rnn_type
        self.attention = attention
        self.attention_units = attention_units
        self.input_feeding = input_feeding
        self.dropout = dropout
        self.word_dropout = word_dropout
        self.tie_embeddings = tie_embeddings
        self.layer_norm = layer_norm
        self.embedding = keras.layers.Embedding(vocab_size, embedding_dim, name="embedding")
        self.cell = DecoderCell(
            embedding_dim,
            memory_dim,
            units,
            num_layers=num_layers,
            rnn_type=rnn_type,
            attention=attention,
            attention_units=attention_units,
            input_feeding=input_feeding,
            dropout=dropout,
            layer_norm=layer_norm,
            name="cell",
        )
        self.dropout_layer = keras.layers.Dropout(dropout)
        self.word_dropout_layer = word_dropout_layer(word_dropout)
        self.generator = Generator(vocab_size, tied=tie_embeddings, name="generator")

    def build(self, input_shape=None):
        self.embedding.build((None, None))
        self.cell.build()
        self.generator.build((None, self.units))
        self.built = True

    def call(self, decoder_input, state, memory, training=False):
        """Teacher forcing.

        Args:
            decoder_input: `(batch, T)` int ids, `[BOS] + y`, PAD-padded.
            state: the `DecoderCell` state (from `DecoderCell.initial_state`).
            memory: the `DecoderCell` memory.

        Returns:
            Logits `(batch, T, vocab_size)`.
        """
        return self.logits(self.attentional_states(decoder_input, state, memory, training=training))

    def attentional_states(self, decoder_input, state, memory, training=False):
        """Teacher forcing up to the generator: the attentional states `(batch, T, units)`
        (after dropout), which `logits` projects; arguments as `call`. Training projects only
        the non-PAD positions."""
        embedded = self.word_dropout_layer(self.embedding(decoder_input), training=training)
        embedded = self.dropout_layer(embedded, training=training)
        inputs = tf.TensorArray(embedded.dtype, size=tf.shape(embedded)[1]).unstack(
            tf.transpose(embedded, [1, 0, 2])  # (T, batch, embedding_dim)
        )
        steps = inputs.size()

        def body(t, state, outputs):
            output, state, _ = self.cell(inputs.read(t), state, memory, training=training)
            return t + 1, state, outputs.write(t, output)

        outputs = tf.TensorArray(self.compute_dtype, size=steps)
        _, _, outputs = tf.while_loop(
            lambda t, *_: t < steps, body, (tf.constant(0), state, outputs)
        )
        outputs = tf.transpose(outputs.stack(), [1, 0, 2])  # (batch, T, units)
        return self.dropout_layer(outputs, training=training)

    def step(self, tokens, state, memory):
        """One inference step.

        Args:
            tokens: `(batch,)` int ids of the previous target token.

        Returns:
            `(log_probs (batch, vocab_size), new_state, attention_weights (batch, S))`.
        """
        output, state, weights = self.cell(self.embedding(tokens), state, memory)
        return ops.log_softmax(self.logits(output), axis=-1), state, weights

    def logits(self, outputs):
        """`(..., units)` attentional states -> `(..., vocab_size)` float32 logits."""
        embeddings = self.embedding.embeddings if self.tie_embeddings else None
        return self.generator(outputs, embeddings=embeddings)

    def get_config(self):
        return {
            **super().get_config(),
            "vocab_size": self.vocab_size,
            "embedding_dim": self.embedding_dim,
            "memory_dim": self.memory_dim,
            "units": self.units,
            "num_layers": self.num_layers,
            "rnn_type": self.rnn_type,
            "attention": self.attention,
            "attention_units": self.attention_units,
            "input_feeding": self.input_feeding,
            "dropout": self.dropout,
            "word_dropout": self.word_dropout,
            "tie_embeddings": self.tie_embeddings,
            "layer_norm": self.layer_norm,
        }
