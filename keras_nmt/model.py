"""The attention encoder-decoder as one Keras model.

- `call({"source", "decoder_input"})`: teacher-forced logits `(batch, T, V)`;
- `packed_logits(inputs, labels)`: the same forward pass with the generator run on the
  non-PAD target positions only (what `trainer.Trainer` trains on);
- `initial_decoding_state(source)`: encodes once and returns the decoding state;
- `step(tokens, state)`: one decoder step, `(log_probs, new_state, attention)`, what the
  decoding strategies in `keras_nmt.decoding` call.
"""

from __future__ import annotations

import dataclasses

import keras
import tensorflow as tf
from keras import ops

from keras_nmt.config import ModelConfig
from keras_nmt.layers.bridge import Bridge
from keras_nmt.layers.decoder import Decoder
from keras_nmt.layers.encoder import Encoder
from keras_nmt.tokenizer import PAD_ID


class Seq2Seq(keras.Model):
    """Encoder, bridge and attention decoder.

    Args:
        source_vocab_size, target_vocab_size: vocabulary sizes.
        The other arguments are the fields of `keras_nmt.config.ModelConfig`.

    Call arguments:
        inputs: a dict with `"source"` `(batch, S)` and `"decoder_input"` `(batch, T)`,
            int ids padded with PAD = 0.

    Returns:
        Logits `(batch, T, target_vocab_size)`, float32.
    """

    def __init__(
        self,
        source_vocab_size: int,
        target_vocab_size: int,
        rnn_type: str = "lstm",
        embedding_dim: int = 256,
        encoder_layers: int = 1,
        encoder_units: int = 256,
        bidirectional: bool = True,
        decoder_layers: int = 1,
        decoder_units: int = 256,
        attention: str = "general",
        attention_units: int | None = None,
        input_feeding: bool = True,
        bridge: str = "project",
        dropout: float = 0.2,
        tie_embeddings: bool = False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.source_vocab_size = source_vocab_size
        self.target_vocab_size = target_vocab_size
        self.model_config = ModelConfig(
            rnn_type=rnn_type,
            embedding_dim=embedding_dim,
            encoder_layers=encoder_layers,
            encoder_units=encoder_units,
            bidirectional=bidirectional,
            decoder_layers=decoder_layers,
            decoder_units=decoder_units,
            attention=attention,
            attention_units=attention_units,
            input_feeding=input_feeding,
            bridge=bridge,
            dropout=dropout,
            tie_embeddings=tie_embeddings,
        )
        self.encoder = Encoder(
            source_vocab_size,
            embedding_dim,
            encoder_units,
            num_layers=encoder_layers,
            rnn_type=rnn_type,
            bidirectional=bidirectional,
            dropout=dropout,
            name="encoder",
        )
        self.bridge = Bridge(
            bridge,
            decoder_units,
            decoder_layers=decoder_layers,
            states_per_cell=self.encoder.states_per_cell,
            name="bridge",
        )
        self.decoder = Decoder(
            target_vocab_size,
            embedding_dim,
            memory_dim=encoder_units,
            units=decoder_units,
            num_layers=decoder_layers,
            rnn_type=rnn_type,
            attention=attention,
            attention_units=attention_units,
            input_feeding=input_feeding,
            dropout=dropout,
            tie_embeddings=tie_embeddings,
            name="decoder",
        )

    @classmethod
    def from_model_config(
        cls, config: ModelConfig, source_vocab_size: int, target_vocab_size: int
    ) -> Seq2Seq:
        return cls(source_vocab_size, target_vocab_size, **dataclasses.asdict(config))

    def build(self, input_shape=None):
        self.encoder.build((None, None))
        encoder_states_shape = self.encoder.compute_output_shape((None, None))[1]
        self.bridge.build(encoder_states_shape)
        self.decoder.build()
        self.built = True

    def encode(self, source, training=False):
        """Runs the encoder and the bridge.

        Args:
            source: `(batch, S)` int ids.

        Returns:
            `(decoder_state, memory)` as `DecoderCell` expects them.
        """
        outputs, final_states = self.encoder(source, training=training)
        state = self.decoder.cell.initial_state(self.bridge(final_states))
        memory = self.decoder.cell.memory(outputs, ops.not_equal(source, PAD_ID))
        return state, memory

    def call(self, inputs, training=False):
        state, memory = self.encode(inputs["source"], training=training)
        return self.decoder(inputs["decoder_input"], state, memory, training=training)

    def packed_logits(self, inputs, labels, training=False):
        """Teacher forcing with the generator run on the non-PAD label positions only (PAD
        rows are most of the padding cost: the vocabulary projection dominates a step).

        Args:
            inputs: as `call`.
            labels: `(batch, T)` int ids, PAD-padded like `inputs["decoder_input"]`.

        Returns:
            `(logits (N, V) float32, labels (N,))` for the N non-PAD positions.
        """
        state, memory = self.encode(inputs["source"], training=training)
        states = self.decoder.states(inputs["decoder_input"], state, memory, training=training)
        real = ops.not_equal(labels, PAD_ID)
        return self.decoder.logits(tf.boolean_mask(states, real)), tf.boolean_mask(labels, real)

    def initial_decoding_state(self, source):
        """The decoding state for `source` `(batch, S)`: one nested dict holding the decoder
        state and the attention memory, every leaf with the batch as its first axis."""
        state, memory = self.encode(source)
        return {"decoder": state, "memory": memory}

    def step(self, tokens, state):
        """One decoding step: `tokens` `(batch,)` -> `(log_probs (batch, V), new_state,
        attention (batch, S))`; `state` as from `initial_decoding_state`."""
        log_probs, decoder_state, attention = self.decoder.step(
            tokens, state["decoder"], state["memory"]
        )
        return log_probs, {"decoder": decoder_state, "memory": state["memory"]}, attention

    def get_config(self):
        return {
            **super().get_config(),
            "source_vocab_size": self.source_vocab_size,
            "target_vocab_size": self.target_vocab_size,
            **dataclasses.asdict(self.model_config),
        }
