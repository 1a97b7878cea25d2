"""Decoding strategies. Each sees only a step function

    step(tokens (batch,), state) -> (log_probs (batch, V), new_state, attention (batch, S))

and knows nothing of the model behind it. A search may step any subset of the rows (those
still decoding), so each row's result may depend only on its token and its state: everything
per sentence that a step reads (e.g. the encoder memory) is in the state. A leaf the step
returns unchanged (the very tensor it was given) is taken for a per-sentence constant.
"""

from keras_nmt.decoding.beam_search import BeamResult, beam_search
from keras_nmt.decoding.ensemble import ensemble_step
from keras_nmt.decoding.forced import force_decode
from keras_nmt.decoding.greedy import DecodeResult, greedy_search
from keras_nmt.decoding.sampling import Sampling, sampler
from keras_nmt.decoding.scoring import length_penalty, normalised_score
from keras_nmt.decoding.search import search
from keras_nmt.decoding.step import forbid_tokens

__all__ = [
    "BeamResult",
    "DecodeResult",
    "Sampling",
    "beam_search",
    "ensemble_step",
    "forbid_tokens",
    "force_decode",
    "greedy_search",
    "length_penalty",
    "normalised_score",
    "sampler",
    "search",
]
