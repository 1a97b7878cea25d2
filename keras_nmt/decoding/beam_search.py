"""Batched beam search in one tf.while_loop over `batch * beam` flattened hypotheses.

- The first step runs once per sentence; its state is then repeated `beam` times along the
  batch axis. After that, each step runs only on the hypotheses still decoding
  (`rows.step_rows`), reading the states of the hypotheses they extend: a finished
  hypothesis, or any hypothesis of a finished sentence, costs no step.
- A finished hypothesis is frozen: it may only extend with PAD at no cost, so its score and
  length stop changing.
- Candidates are ranked by the GNMT length-normalised score
  `log P(y) / lp(|y|)`, `lp(n) = ((5 + n) / 6) ** alpha` (Wu et al. 2016, eq. 14; alpha = 0
  turns it off), where `|y|` counts the emitted tokens, EOS included.
- A sentence is done when its `n_best` top-ranked hypotheses have finished (EOS, or the
  sentence's maximum length), as in OpenNMT-py: its other hypotheses are frozen where they
  are (they rank below, and no longer cost decoding work that could change the answer's top
  `n_best`). The loop stops as soon as every sentence is done.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import tensorflow as tf

from keras_nmt.decoding.rows import active_rows, scatter_rows, step_rows, token_at, write_at
from keras_nmt.decoding.step import StepFn
from keras_nmt.special_ids import PAD_ID


class BeamResult(NamedTuple):
    """The n best hypotheses per sentence, best first.

    tokens: `(batch, n, L)` int32; each hypothesis, its EOS (if any), then PAD.
    lengths: `(batch, n)` int32; the tokens before EOS (what to detokenize).
    scores: `(batch, n)` float32; `log P(y) / lp(|y|)`.
    attention: `(batch, L, S)` float32; the attention weights of the best hypothesis.
    """

    tokens: tf.Tensor
    lengths: tf.Tensor
    scores: tf.Tensor
    attention: tf.Tensor


def length_penalty(lengths, alpha: float):
    """GNMT's `((5 + n) / 6) ** alpha` for float lengths `n`."""
    return tf.pow((5.0 + lengths) / 6.0, alpha)


def tile_beams(state: Any, beam_size: int) -> Any:
    """Repeats every leaf `(batch, ...)` to `(batch * beam, ...)`, beams of a sentence adjacent."""
    return tf.nest.map_structure(lambda x: tf.repeat(x, beam_size, axis=0), state)


def beam_search(
    step: StepFn,
    start_ids: tf.Tensor,
    initial_state: Any,
    end_id: int,
    max_lengths: tf.Tensor,
    beam_size: int,
    length_penalty_alpha: float = 0.0,
    n_best: int = 1,
) -> BeamResult:
    """Beam search over `step` (see `keras_nmt.decoding`).

    Args:
        step: the step function.
        start_ids: `(batch,)` int32 first input tokens (BOS).
        initial_state: the step state for the batch (leaves `(batch, ...)`).
        end_id: the EOS id.
        max_lengths: `(batch,)` int32, the most tokens (EOS included) each sentence may emit.
        beam_size: hypotheses kept per sentence, >= 1.
        length_penalty_alpha: GNMT alpha, >= 0.
        n_best: hypotheses returned per sentence, 1 <= n_best <= beam_size.

    Returns:
        A `BeamResult`.
    """
    if beam_size < 1:
        raise ValueError(f"beam_size: expected >= 1, received {beam_size}")
    if not 1 <= n_best <= beam_size:
        raise ValueError(f"n_best: expected 1 <= n_best <= beam_size ({beam_size}), got {n_best}")
    if length_penalty_alpha < 0:
        raise ValueError(f"length_penalty_alpha: expected >= 0, received {length_penalty_alpha}")
    k = beam_size
    batch = tf.shape(start_ids)[0]
    flat = batch * k
    max_lengths = tf.cast(max_lengths, tf.int32)
    length = tf.reduce_max(tf.concat([max_lengths, [0]], axis=0))
    beam_max_lengths = tf.repeat(max_lengths, k)  # (batch * k,)
    # Row offsets of each sentence's beams in the flattened batch.
    offsets = tf.repeat(tf.range(batch) * k, k)  # (batch * k,)

    log_probs, state, attention = step(start_ids, initial_state)  # one row per sentence
    # Candidates per beam: its best k tokens (fewer if the vocabulary is smaller).
    per_beam = min(k, log_probs.shape[-1] or k)

    def choose(log_probs):
        """`(n, V)` -> each row's `per_beam` best log-probabilities and tokens `(n, per_beam)`.
        A sentence's k best extensions are among its beams' k best tokens each (the
        normalised score is increasing in a token's log-probability within a beam), so k * k
        candidates per sentence are ranked instead of k * V."""
        return tf.math.top_k(tf.cast(log_probs, tf.float32), k=per_beam)

    row_scores, row_tokens = tile_beams(choose(log_probs), k)
    state, attention = tile_beams((state, attention), k)
    # At the start only the first beam of each sentence is alive.
    cumulative = tf.tile(tf.concat([[0.0], tf.fill([k - 1], -float("inf"))], 0), [batch])
    # The one continuation of a finished hypothesis: PAD at no cost.
    frozen = tf.concat([[0.0], tf.fill([per_beam - 1], -float("inf"))], 0)  # (per_beam,)
    finished = tf.less_equal(beam_max_lengths, 0)
    lengths = tf.zeros([flat], tf.int32)
    tokens = tf.fill([flat, length], PAD_ID)
    weights = tf.zeros([flat, length, tf.shape(attention)[1]], attention.dtype)

    def body(
        t, row_scores, row_tokens, state, attention, cumulative, finished, lengths, tokens,
        weights,
    ):  # fmt: skip
        row_scores = tf.where(finished[:, None], frozen[None, :], row_scores)  # (flat, per_beam)
        row_tokens = tf.where(finished[:, None], PAD_ID, row_tokens)
        candidates = cumulative[:, None] + row_scores  # (flat, per_beam)
        new_lengths = tf.cast(lengths + tf.cast(~finished, tf.int32), tf.float32)
        normalised = candidates / length_penalty(new_lengths, length_penalty_alpha)[:, None]
        _, best = tf.math.top_k(tf.reshape(normalised, [batch, k * per_beam]), k=k)
        best = tf.reshape(best, [flat])
        origin = offsets + best // per_beam  # (flat,) rows the new beams extend
        chosen = origin * per_beam + best % per_beam  # their candidates, flattened
        token = tf.gather(tf.reshape(row_tokens, [-1]), chosen)
        cumulative = tf.gather(tf.reshape(candidates, [-1]), chosen)

        was_finished = tf.gather(finished, origin)
        lengths = tf.gather(lengths, origin) + tf.cast(~was_finished, tf.int32)
        tokens = write_at(tf.gather(tokens, origin), t, token)
        step_attention = tf.where(was_finished[:, None], 0.0, tf.gather(attention, origin))
        weights = write_at(tf.gather(weights, origin), t, step_attention)
        finished = was_finished | tf.equal(token, end_id) | (t + 1 >= beam_max_lengths)
        # Beams come ranked (top_k sorts): a sentence is done when its n_best first are.
        done = tf.reduce_all(tf.reshape(finished, [batch, k])[:, :n_best], axis=1)
        finished = finished | tf.repeat(done, k)
        # The next step, for the hypotheses still decoding only, from the states of those
        # they extend.
        rows = active_rows(tf.logical_not(finished))
        log_probs, state, new_attention = step_rows(
            step, tf.gather(token, rows), state, tf.gather(origin, rows), rows, flat
        )
        new_scores, new_tokens = choose(log_probs)
        row_scores = scatter_rows(rows, new_scores, flat, like=row_scores)
        row_tokens = scatter_rows(rows, new_tokens, flat, like=row_tokens)
        attention = scatter_rows(rows, new_attention, flat, like=attention)
        return (
            t + 1, row_scores, row_tokens, state, attention, cumulative, finished, lengths,
            tokens, weights,
        )  # fmt: skip

    def cond(t, *loop_vars):
        return tf.logical_and(t < length, tf.logical_not(tf.reduce_all(loop_vars[5])))

    loop_vars = (tf.constant(0), row_scores, row_tokens, state, attention, cumulative)
    loop_vars += (finished, lengths, tokens, weights)
    *_, cumulative, _, lengths, tokens, weights = tf.while_loop(cond, body, loop_vars)

    scores = cumulative / length_penalty(tf.cast(lengths, tf.float32), length_penalty_alpha)
    scores = tf.reshape(scores, [batch, k])
    # Beams are ranked by normalised score at every step; rank once more after the last one.
    scores, order = tf.math.top_k(scores, k=n_best)  # (batch, n)
    rows = tf.reshape(tf.range(batch)[:, None] * k + order, [-1])  # (batch * n,)
    tokens = tf.reshape(tf.gather(tokens, rows), [batch, n_best, length])
    lengths = tf.reshape(tf.gather(lengths, rows), [batch, n_best])
    last = token_at(tokens, tf.maximum(lengths - 1, 0))
    ended = tf.logical_and(lengths > 0, tf.equal(last, end_id))
    best_weights = tf.gather(weights, tf.range(batch) * k + order[:, 0])
    return BeamResult(tokens, lengths - tf.cast(ended, tf.int32), scores, best_weights)
