"""Beam search, driven by fake step functions with known answers and by a real model."""

import itertools

import numpy as np
import pytest
import tensorflow as tf

from keras_nmt.decoding import (
    beam_search,
    forbid_tokens,
    greedy_search,
    length_penalty,
    normalised_score,
    search,
)
from keras_nmt.special_ids import BOS_ID, EOS_ID, PAD_ID
from tests.test_model import SOURCE, small_model

A, B = 3, 4
VOCAB = 5


def markov_step(table):
    """A fake step: the next-token distribution depends only on the previous token,
    `table[previous]` (rows for PAD..B); the state is unused."""
    log_table = tf.math.log(tf.constant(table, tf.float32))

    def step(tokens, state):
        attention = tf.one_hot(tf.zeros_like(tokens), 2)
        return tf.gather(log_table, tokens), state, attention

    return step


# After BOS: A 0.6, B 0.4. After A: EOS 0.3, A 0.35, B 0.35. After B: EOS 0.9, A/B 0.05.
TABLE = [
    [1, 0, 0, 0, 0],  # after PAD (never used by a live hypothesis)
    [0, 0, 0, 0.6, 0.4],  # after BOS
    [1, 0, 0, 0, 0],  # after EOS
    [0, 0, 0.3, 0.35, 0.35],  # after A
    [0, 0, 0.9, 0.05, 0.05],  # after B
]


def run(strategy, table, max_length, batch=1, **options):
    step = forbid_tokens(markov_step(table), [PAD_ID, BOS_ID])
    return strategy(
        step, tf.fill([batch], BOS_ID), {"unused": tf.zeros([batch, 1])}, EOS_ID,
        tf.fill([batch], max_length), **options,
    )  # fmt: skip


def test_known_beams_where_greedy_is_wrong():
    greedy = run(greedy_search, TABLE, 4)
    assert greedy.tokens.numpy().tolist() == [[A, A, A, A]]
    result = run(beam_search, TABLE, 4, beam_size=2, n_best=2)
    assert result.tokens.numpy().tolist() == [[[B, EOS_ID, PAD_ID, PAD_ID], [A, A, A, A]]]
    assert result.lengths.numpy().tolist() == [[1, 4]]
    np.testing.assert_allclose(
        result.scores, [[np.log(0.4 * 0.9), np.log(0.6 * 0.35**3)]], rtol=1e-5
    )


def test_length_penalty_normalises_scores():
    result = run(beam_search, TABLE, 4, beam_size=2, n_best=2, length_penalty_alpha=1.0)
    lp = lambda n: (5 + n) / 6  # noqa: E731
    expected = sorted([np.log(0.36) / lp(2), np.log(0.6 * 0.35**3) / lp(4)], reverse=True)
    np.testing.assert_allclose(result.scores[0], expected, rtol=1e-5)
    np.testing.assert_allclose(length_penalty(tf.constant(4.0), 0.6), (9 / 6) ** 0.6, rtol=1e-6)


# As TABLE, but after A EOS is the most probable: greedy ends with EOS too.
EOS_AFTER_A = [row if index != A else [0, 0, 0.5, 0.25, 0.25] for index, row in enumerate(TABLE)]


def test_normalised_score_is_the_score_beam_and_greedy_search_return():
    """One function scores a finished hypothesis, EOS counted in its length: beam search's
    n best (B EOS, A EOS) and greedy search's (A EOS) through `search`."""
    alpha = 0.6
    expected = normalised_score(tf.math.log([0.4 * 0.9, 0.6 * 0.5]), [2, 2], alpha)
    beam = run(beam_search, EOS_AFTER_A, 4, beam_size=2, n_best=2, length_penalty_alpha=alpha)
    assert beam.tokens.numpy()[0, :, :2].tolist() == [[B, EOS_ID], [A, EOS_ID]]
    np.testing.assert_allclose(beam.scores[0], expected, rtol=1e-6)
    greedy = run(search, EOS_AFTER_A, 4, beam_size=1, length_penalty_alpha=alpha)
    assert greedy.tokens.numpy()[0, 0, :2].tolist() == [A, EOS_ID]
    np.testing.assert_allclose(greedy.scores[0], expected[1:], rtol=1e-6)
    # Without EOS in the length, the scores would differ: the test tells them apart.
    assert abs(float(normalised_score(np.log(0.3), 1, alpha)) - float(expected[1])) > 0.05


def exhaustive_best(table, max_length, alpha):
    """The best sequence by brute force: all sequences of real tokens up to max_length, each
    ended by EOS or cut at max_length."""
    log_table = np.log(np.array(table, dtype=np.float64) + 1e-300)
    best, best_score = None, -np.inf
    real = [EOS_ID, A, B]
    for n in range(1, max_length + 1):
        for seq in itertools.product(real, repeat=n):
            if EOS_ID in seq[:-1] or (n < max_length and seq[-1] != EOS_ID):
                continue  # EOS ends a hypothesis; without it, only the maximum length does
            score, previous = 0.0, BOS_ID
            for token in seq:
                score += log_table[previous, token]
                previous = token
            score /= ((5 + n) / 6) ** alpha
            if score > best_score + 1e-9:
                best, best_score = list(seq), score
    return best, best_score


@pytest.mark.parametrize("seed, alpha", [(0, 0.0), (1, 0.6), (2, 1.0), (3, 0.0)])
def test_wide_beam_equals_exhaustive_search(seed, alpha):
    rng = np.random.default_rng(seed)
    table = np.zeros((VOCAB, VOCAB))
    table[:, 2:] = rng.dirichlet(np.ones(3), size=VOCAB)
    expected, expected_score = exhaustive_best(table, 4, alpha)
    # 3 real tokens, length 4: at most 3**4 = 81 live prefixes; a beam of 81 is exhaustive.
    result = run(beam_search, table.tolist(), 4, beam_size=81, length_penalty_alpha=alpha)
    tokens = result.tokens.numpy()[0, 0]
    got = [t for t in tokens.tolist() if t != PAD_ID]
    assert got == expected
    np.testing.assert_allclose(result.scores[0, 0], expected_score, rtol=1e-4)


def test_empty_batch_batch_of_one_and_maximum_length():
    empty = run(beam_search, TABLE, 4, batch=0, beam_size=3, n_best=2)
    assert empty.tokens.shape[:2] == (0, 2) and empty.scores.shape == (0, 2)
    one = run(beam_search, TABLE, 2, beam_size=3, n_best=3)
    # Maximum length 2: A A is cut without EOS; B EOS ends; A EOS ends.
    assert one.tokens.numpy()[0].tolist() == [[B, EOS_ID], [A, A], [A, B]]
    assert one.lengths.numpy()[0].tolist() == [1, 2, 2]
    zero = run(beam_search, TABLE, 0, beam_size=2)
    assert zero.lengths.numpy().tolist() == [[0]] and zero.scores.numpy()[0, 0] == 0.0


def test_finished_hypotheses_are_not_stepped():
    """The first step runs once per sentence, then only the hypotheses still decoding."""
    stepped = []
    inner = markov_step(TABLE)

    def counting_step(tokens, state):
        stepped.append(int(tokens.shape[0]))  # eager: the loop body runs as Python
        return inner(tokens, state)

    step = forbid_tokens(counting_step, [PAD_ID, BOS_ID])
    result = beam_search(
        step, tf.fill([1], BOS_ID), {"unused": tf.zeros([1, 1])}, EOS_ID, tf.fill([1], 4),
        beam_size=2, n_best=2,
    )  # fmt: skip
    assert result.tokens.numpy().tolist() == [[[B, EOS_ID, PAD_ID, PAD_ID], [A, A, A, A]]]
    # BOS; [A, B]; after B EOS only A A goes on; then A A A; the last step (all ended) gets
    # one row instead of an empty batch. Without skipping: 2 rows at every step.
    assert stepped == [1, 2, 1, 1, 1]


def test_invalid_arguments():
    with pytest.raises(ValueError, match="n_best: expected 1 <= n_best <= beam_size"):
        run(beam_search, TABLE, 3, beam_size=2, n_best=3)
    with pytest.raises(ValueError, match="n_best: expected 1 with greedy"):
        run(search, TABLE, 3, beam_size=1, n_best=2)


def model_search(model, source, beam_size, alpha=0.0, n_best=1, raw=False):
    state = model.initial_decoding_state(source)
    step = forbid_tokens(model.step, [PAD_ID, BOS_ID])
    strategy = beam_search if raw else search
    batch = source.shape[0]
    return tf.function(strategy, reduce_retracing=True)(
        step, tf.fill([batch], BOS_ID), state, EOS_ID, tf.fill([batch], 7), beam_size, alpha,
        n_best,
    )  # fmt: skip


def test_beam_of_one_equals_greedy_on_a_model():
    model = small_model(dropout=0.0)
    state = model.initial_decoding_state(SOURCE)
    step = forbid_tokens(model.step, [PAD_ID, BOS_ID])
    greedy = greedy_search(step, tf.fill([3], BOS_ID), state, EOS_ID, tf.fill([3], 7))
    beam = model_search(model, SOURCE, beam_size=1, raw=True)
    np.testing.assert_array_equal(beam.tokens[:, 0], greedy.tokens)
    np.testing.assert_array_equal(beam.lengths[:, 0], greedy.lengths)
    np.testing.assert_allclose(beam.scores[:, 0], greedy.scores, rtol=1e-5)


def test_scores_equal_teacher_forced_log_probabilities():
    model = small_model(dropout=0.0)
    alpha = 0.6
    result = model_search(model, SOURCE, beam_size=4, alpha=alpha, n_best=3)
    for row in range(3):
        for n in range(3):
            tokens = result.tokens.numpy()[row, n]
            length = int(result.lengths[row, n])
            emitted = length + int(np.append(tokens, PAD_ID)[length] == EOS_ID)  # EOS counts
            decoder_input = np.array([[BOS_ID, *tokens[: emitted - 1]]])
            logits = model({"source": SOURCE[row : row + 1], "decoder_input": decoder_input})
            log_probs = tf.nn.log_softmax(logits).numpy()[0]
            total = sum(log_probs[t, tokens[t]] for t in range(emitted))
            expected = total / ((5 + emitted) / 6) ** alpha
            np.testing.assert_allclose(result.scores[row, n], expected, rtol=1e-4)


def test_a_sentence_does_not_depend_on_its_batch():
    model = small_model(dropout=0.0)
    batched = model_search(model, SOURCE, beam_size=3, alpha=0.6, n_best=2)
    reordered = tf.gather(SOURCE, [2, 0, 1])
    moved = model_search(model, reordered, beam_size=3, alpha=0.6, n_best=2)
    for row, (source_row, length) in enumerate([(0, 5), (1, 3), (2, 2)]):
        alone = model_search(model, SOURCE[source_row : source_row + 1, :length], 3, 0.6, 2)
        position = [1, 2, 0][row]
        for other in (alone, moved):
            index = 0 if other is alone else position
            np.testing.assert_array_equal(other.tokens[index], batched.tokens[row])
            np.testing.assert_allclose(other.scores[index], batched.scores[row], atol=1e-5)
