"""Decoding strategies. Each sees only a step function

    step(tokens (batch,), state) -> (log_probs (batch, V), new_state, attention (batch, S))

and knows nothing of the model behind it.
"""

from keras_nmt.decoding.greedy import DecodeResult, greedy_search
from keras_nmt.decoding.step import forbid_tokens

__all__ = ["DecodeResult", "forbid_tokens", "greedy_search"]
