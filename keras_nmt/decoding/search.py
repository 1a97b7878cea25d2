"""`search`: the configured strategy: beam search, greedy search when the beam is 1, or
random sampling."""

from __future__ import annotations

from typing import Any

import tensorflow as tf

from keras_nmt.decoding.beam_search import BeamResult, beam_search
from keras_nmt.decoding.greedy import greedy_search
from keras_nmt.decoding.rows import token_at
from keras_nmt.decoding.sampling import Sampling, sampler
from keras_nmt.decoding.scoring import normalised_score
from keras_nmt.decoding.step import StepFn


def search(
    step: StepFn,
    start_ids: tf.Tensor,
    initial_state: Any,
    end_id: int,
    max_lengths: tf.Tensor,
    beam_size: int = 1,
    length_penalty_alpha: float = 0.0,
    n_best: int = 1,
    sampling: Sampling | None = None,
) -> BeamResult:
    """Beam search of `beam_size`, delegating to greedy search (same result, less work) when
    `beam_size` is 1; arguments and result as `beam_search`. With `sampling`, greedy
    search's loop draws each token instead (`decoding.sampling`; `beam_size` must be 1).
    Greedy and sampled scores are normalised as beam search's (`normalised_score`), so scores
    mean the same whatever the strategy."""
    if sampling is not None and beam_size != 1:
        raise ValueError(f"beam_size: expected 1 with sampling, got {beam_size}")
    if beam_size > 1:
        return beam_search(
            step, start_ids, initial_state, end_id, max_lengths, beam_size,
            length_penalty_alpha, n_best,
        )  # fmt: skip
    if n_best != 1:
        raise ValueError(f"n_best: expected 1 with greedy search (beam_size 1), got {n_best}")
    choose = sampler(sampling) if sampling is not None else None
    result = greedy_search(step, start_ids, initial_state, end_id, max_lengths, choose)
    ended = tf.equal(token_at(result.tokens, result.lengths), end_id)
    emitted = result.lengths + tf.cast(ended, tf.int32)  # EOS included
    scores = normalised_score(result.scores, emitted, length_penalty_alpha)
    return BeamResult(
        result.tokens[:, None], result.lengths[:, None], scores[:, None], result.attention
    )
