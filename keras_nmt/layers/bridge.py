"""The bridge: from the encoder's final states to the decoder's initial recurrent states."""

from __future__ import annotations

import keras

from keras_nmt.config import BRIDGES


class Bridge(keras.layers.Layer):
    """Maps encoder final states to decoder initial states.

    Kinds:
        - `"project"`: for each state slot (h, and c for an LSTM), concatenate that slot over
          every encoder layer and direction and project it linearly to
          `decoder_layers * decoder_units`, one slice per decoder layer.
        - `"sum"`: decoder layer i starts from the sum of encoder layer i's directions
          (needs as many layers on both sides and `units per direction == decoder_units`).
        - `"zeros"`: the decoder starts from zeros.

    Args:
        kind: one of `"project"`, `"sum"`, `"zeros"`.
        decoder_units: the decoder cell width.
        decoder_layers: the number of decoder cells.
        states_per_cell: 2 for LSTM (`[h, c]`), 1 for GRU (`[h]`).

    Call arguments:
        encoder_states: as returned by `Encoder`: per layer, per direction, a list of
            `states_per_cell` tensors of shape `(batch, units_per_direction)`.

    Returns:
        A list with one entry per decoder layer, each a list of `states_per_cell` tensors of
        shape `(batch, decoder_units)`.
    """

    def __init__(
        self,
        kind: str,
        decoder_units: int,
        decoder_layers: int = 1,
        states_per_cell: int = 2,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if kind not in BRIDGES:
            raise ValueError(f"kind: expected one of {BRIDGES}, received {kind!r}")
        if states_per_cell not in (1, 2):
            raise ValueError(f"states_per_cell: expected 1 or 2, received {states_per_cell}")
        self.kind = kind
        self.decoder_units = decoder_units
        self.decoder_layers = decoder_layers
        self.states_per_cell = states_per_cell
        self.projections = [
            keras.layers.Dense(decoder_units * decoder_layers, name=f"project_{slot}")
            for slot in range(states_per_cell if kind == "project" else 0)
        ]

    def build(self, encoder_states_shape):
        if self.kind == "project":
            width = sum(direction[0][-1] for layer in encoder_states_shape for direction in layer)
            for projection in self.projections:
                projection.build((None, width))
        self.built = True

    def call(self, encoder_states):
        n = self.states_per_cell
        if self.kind == "sum":
            if len(encoder_states) != self.decoder_layers:
                raise ValueError(
                    f"'sum' bridge: expected {self.decoder_layers} encoder layers, received "
                    f"{len(encoder_states)}"
                )
            return [
                [sum(direction[slot] for direction in layer) for slot in range(n)]
                for layer in encoder_states
            ]
        first = encoder_states[0][0][0]  # (batch, units_per_direction)
        if self.kind == "zeros":
            zeros = keras.ops.zeros(
                (keras.ops.shape(first)[0], self.decoder_units), dtype=first.dtype
            )
            return [[zeros] * n for _ in range(self.decoder_layers)]
        per_slot = []
        for slot, projection in enumerate(self.projections):
            flat = keras.ops.concatenate(
                [direction[slot] for layer in encoder_states for direction in layer], axis=-1
            )
            per_slot.append(keras.ops.split(projection(flat), self.decoder_layers, axis=-1))
        return [
            [per_slot[slot][index] for slot in range(n)] for index in range(self.decoder_layers)
        ]

    def get_config(self):
        return {
            **super().get_config(),
            "kind": self.kind,
            "decoder_units": self.decoder_units,
            "decoder_layers": self.decoder_layers,
            "states_per_cell": self.states_per_cell,
        }
