"""Decoding strategies. Each sees only a step function

    step(tokens (batch,), state) -> (log_probs (batch, V), new_state, attention (batch, S))

and knows nothing of the model behind it.
"""

from keras_nmt.decoding.greedy import DecodeResult, greedy_search

__all__ = ["DecodeResult", "greedy_search"]
