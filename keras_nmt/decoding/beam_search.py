"""Batched beam search in one tf.while_loop over `batch * beam` flattened hypotheses.

- The first step runs once per sentence; its state is then repeated `beam` times along the
  batch axis. After that, each step runs only on the hypotheses still decoding
  (`rows.step_rows`), reading the states of the hypotheses they extend: a finished
  hypothesis, or any hypothesis of a finished sentence, costs no step.
- A finished hypothesis is frozen: it may only extend with PAD at no cost, so its score and
  length stop changing.
- Candidates are ranked by the GNMT length-normalised score `log P(y) / lp(|y|)`
  (`scoring.normalised_score`), where `|y|` counts the emitted tokens, EOS included.
- A sentence is done when its `n_best` top-ranked hypotheses have finished (EOS, or the
  sentence's maximum length), as in OpenNMT-py: its other hypotheses are frozen where they
  are (they rank below, and no longer cost decoding work that could change the answer's top
  `n_best`). The loop stops as soon as every sentence is done.

Each loop iteration, in the named steps below: `_candidates` (each hypothesis's best
extensions), `_best_candidates` (each sentence's `beam` best of them), `_extended` (the new
hypotheses), `_finished` (which have ended), `_next_step` (the step after each new
hypothesis that is still decoding).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import tensorflow as tf

from keras_nmt.decoding.rows import active_rows, scatter_rows, step_rows, token_at, write_at
from keras_nmt.decoding.scoring import normalised_score
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


class _Hypotheses(NamedTuple):
    """The `flat = batch * beam` hypotheses, a sentence's beams adjacent, best first.

    log_probs: `(flat,)` float32, `log P(y)`.
    finished: `(flat,)` bool.
    lengths: `(flat,)` int32, the tokens emitted, EOS included.
    tokens: `(flat, L)` int32, the tokens emitted, then PAD.
    weights: `(flat, L, S)`, the attention weights of each emitted token (0 past the end).
    """

    log_probs: tf.Tensor
    finished: tf.Tensor
    lengths: tf.Tensor
    tokens: tf.Tensor
    weights: tf.Tensor


class _NextStep(NamedTuple):
    """The step after each hypothesis's last token (zeros for the hypotheses not stepped).

    log_probs: `(flat, per_beam)` float32, its `per_beam` best next-token log-probabilities,
        best first.
    tokens: `(flat, per_beam)` int32, those tokens.
    state: the step state, leaves `(flat, ...)`.
    attention: `(flat, S)`, the step's attention weights.
    """

    log_probs: tf.Tensor
    tokens: tf.Tensor
    state: Any
    attention: tf.Tensor


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
    _check_arguments(beam_size, length_penalty_alpha, n_best)
    max_lengths = tf.repeat(tf.cast(max_lengths, tf.int32), beam_size)  # (flat,)
    length = tf.reduce_max(tf.concat([max_lengths, [0]], axis=0))
    next_step = _first_step(step, start_ids, initial_state, beam_size)
    hypotheses = _no_hypotheses(tf.shape(start_ids)[0], beam_size, max_lengths, length, next_step)

    def body(t, hypotheses, next_step):
        tokens, log_probs, scores = _candidates(hypotheses, next_step, length_penalty_alpha)
        origin, chosen = _best_candidates(scores, beam_size)
        token = tf.gather(tf.reshape(tokens, [-1]), chosen)  # (flat,)
        log_probs = tf.gather(tf.reshape(log_probs, [-1]), chosen)
        hypotheses = _extended(hypotheses, next_step.attention, t, origin, token, log_probs)
        finished = _finished(hypotheses.finished, token, t, end_id, max_lengths, beam_size, n_best)
        hypotheses = hypotheses._replace(finished=finished)
        return t + 1, hypotheses, _next_step(step, next_step, token, origin, finished)

    def cond(t, hypotheses, next_step):
        return tf.logical_and(t < length, tf.logical_not(tf.reduce_all(hypotheses.finished)))

    _, hypotheses, _ = tf.while_loop(cond, body, (tf.constant(0), hypotheses, next_step))
    return _n_best(hypotheses, beam_size, length_penalty_alpha, n_best, end_id)


def _check_arguments(beam_size: int, length_penalty_alpha: float, n_best: int) -> None:
    if beam_size < 1:
        raise ValueError(f"beam_size: expected >= 1, received {beam_size}")
    if not 1 <= n_best <= beam_size:
        raise ValueError(f"n_best: expected 1 <= n_best <= beam_size ({beam_size}), got {n_best}")
    if length_penalty_alpha < 0:
        raise ValueError(f"length_penalty_alpha: expected >= 0, received {length_penalty_alpha}")


def _top_tokens(log_probs, per_beam: int):
    """`(n, V)` -> each row's `per_beam` best log-probabilities (float32) and tokens, both
    `(n, per_beam)`. A sentence's k best extensions are among its beams' k best tokens each
    (the normalised score is increasing in a token's log-probability within a beam), so
    k * k candidates per sentence are ranked instead of k * V."""
    return tf.math.top_k(tf.cast(log_probs, tf.float32), k=per_beam)


def _first_step(step: StepFn, start_ids, initial_state, beam_size: int) -> _NextStep:
    """The first step, run once per sentence, repeated for each of the sentence's beams."""
    log_probs, state, attention = step(start_ids, initial_state)
    # Candidates per beam: its best k tokens (fewer if the vocabulary is smaller).
    per_beam = min(beam_size, log_probs.shape[-1] or beam_size)
    top_log_probs, top_tokens = _top_tokens(log_probs, per_beam)
    return _NextStep(*tile_beams((top_log_probs, top_tokens, state, attention), beam_size))


def _no_hypotheses(batch, beam_size: int, max_lengths, length, next_step) -> _Hypotheses:
    """The empty hypotheses of each sentence's beams before the first token; only the first
    beam of each sentence is alive (the others have log-probability -inf)."""
    flat = batch * beam_size
    first_alive = tf.concat([[0.0], tf.fill([beam_size - 1], -float("inf"))], 0)
    attention = next_step.attention  # (flat, S)
    return _Hypotheses(
        log_probs=tf.tile(first_alive, [batch]),
        finished=tf.less_equal(max_lengths, 0),
        lengths=tf.zeros([flat], tf.int32),
        tokens=tf.fill([flat, length], PAD_ID),
        weights=tf.zeros([flat, length, tf.shape(attention)[1]], attention.dtype),
    )


def _candidates(hypotheses: _Hypotheses, next_step: _NextStep, alpha: float):
    """Each hypothesis's `per_beam` candidate extensions, each `(flat, per_beam)`: their
    tokens, log-probabilities `log P(y)` and normalised scores. A finished hypothesis has a
    single candidate, PAD at no cost (the others are -inf), so its score and length stay."""
    per_beam = next_step.tokens.shape[-1]
    frozen = tf.concat([[0.0], tf.fill([per_beam - 1], -float("inf"))], 0)  # (per_beam,)
    finished = hypotheses.finished[:, None]  # (flat, 1)
    next_log_probs = tf.where(finished, frozen[None, :], next_step.log_probs)
    tokens = tf.where(finished, PAD_ID, next_step.tokens)
    log_probs = hypotheses.log_probs[:, None] + next_log_probs
    lengths = hypotheses.lengths + tf.cast(~hypotheses.finished, tf.int32)  # (flat,)
    return tokens, log_probs, normalised_score(log_probs, lengths[:, None], alpha)


def _best_candidates(scores, beam_size: int):
    """Each sentence's `beam_size` best candidates by `scores` `(flat, per_beam)`, best first:
    `(origin (flat,), chosen (flat,))`, the rows of the hypotheses they extend and their
    indices among the candidates flattened `(flat * per_beam,)`."""
    per_beam = scores.shape[-1]
    per_sentence = tf.reshape(scores, [-1, beam_size * per_beam])  # (batch, k * per_beam)
    _, best = tf.math.top_k(per_sentence, k=beam_size)  # (batch, k)
    first_beam = tf.range(tf.shape(per_sentence)[0]) * beam_size  # (batch,)
    origin = tf.reshape(first_beam[:, None] + best // per_beam, [-1])
    return origin, origin * per_beam + tf.reshape(best % per_beam, [-1])


def _extended(hypotheses: _Hypotheses, attention, t, origin, token, log_probs) -> _Hypotheses:
    """The hypotheses `origin` `(flat,)` extended by `token` `(flat,)` at position `t`, with
    log-probabilities `log_probs` `(flat,)` and the attention weights `attention` `(flat, S)`
    of the step that gave `token`. A finished hypothesis's PAD adds neither to its length nor
    to its attention weights; `finished` is that of `origin`."""
    was_finished = tf.gather(hypotheses.finished, origin)
    token_attention = tf.where(was_finished[:, None], 0.0, tf.gather(attention, origin))
    return _Hypotheses(
        log_probs=log_probs,
        finished=was_finished,
        lengths=tf.gather(hypotheses.lengths, origin) + tf.cast(~was_finished, tf.int32),
        tokens=write_at(tf.gather(hypotheses.tokens, origin), t, token),
        weights=write_at(tf.gather(hypotheses.weights, origin), t, token_attention),
    )


def _finished(finished, token, t, end_id: int, max_lengths, beam_size: int, n_best: int):
    """`finished` `(flat,)` after `token` `(flat,)` at position `t`: a hypothesis ends with EOS
    or at its maximum length, and all the beams of a sentence whose `n_best` first (the
    beams come ranked: top_k sorts) have ended stop there."""
    finished = finished | tf.equal(token, end_id) | (t + 1 >= max_lengths)
    done = tf.reduce_all(tf.reshape(finished, [-1, beam_size])[:, :n_best], axis=1)  # (batch,)
    return finished | tf.repeat(done, beam_size)


def _next_step(step: StepFn, previous: _NextStep, token, origin, finished) -> _NextStep:
    """The step after `token` `(flat,)` for the hypotheses not `finished` `(flat,)` only,
    each from the state of the hypothesis it extends (`origin` `(flat,)`, its row in
    `previous.state`)."""
    flat = tf.shape(finished)[0]
    per_beam = previous.tokens.shape[-1]
    rows = active_rows(tf.logical_not(finished))
    log_probs, state, attention = step_rows(
        step, tf.gather(token, rows), previous.state, tf.gather(origin, rows), rows, flat
    )
    top_log_probs, top_tokens = _top_tokens(log_probs, per_beam)
    return _NextStep(
        log_probs=scatter_rows(rows, top_log_probs, flat, like=previous.log_probs),
        tokens=scatter_rows(rows, top_tokens, flat, like=previous.tokens),
        state=state,
        attention=scatter_rows(rows, attention, flat, like=previous.attention),
    )


def _n_best(
    hypotheses: _Hypotheses, beam_size: int, alpha: float, n_best: int, end_id: int
) -> BeamResult:
    """Each sentence's `n_best` best hypotheses by score, best first (the beams are ranked at
    every step, and once more here after the last), their lengths without EOS, and the best
    one's attention weights."""
    scores = normalised_score(hypotheses.log_probs, hypotheses.lengths, alpha)
    scores = tf.reshape(scores, [-1, beam_size])  # (batch, k)
    batch, length = tf.shape(scores)[0], tf.shape(hypotheses.tokens)[1]
    scores, order = tf.math.top_k(scores, k=n_best)  # (batch, n)
    first_beam = tf.range(batch) * beam_size  # (batch,)
    rows = tf.reshape(first_beam[:, None] + order, [-1])  # (batch * n,)
    tokens = tf.reshape(tf.gather(hypotheses.tokens, rows), [batch, n_best, length])
    lengths = tf.reshape(tf.gather(hypotheses.lengths, rows), [batch, n_best])
    last = token_at(tokens, tf.maximum(lengths - 1, 0))
    ended = tf.logical_and(lengths > 0, tf.equal(last, end_id))
    best_weights = tf.gather(hypotheses.weights, first_beam + order[:, 0])
    return BeamResult(tokens, lengths - tf.cast(ended, tf.int32), scores, best_weights)
