"""Ensembles of step functions, force decoding and sampling, on fake steps with known distributions
and on small models."""

import numpy as np
import tensorflow as tf

from keras_nmt.decoding import Sampling, forbid_tokens, greedy_search, search
from keras_nmt.decoding.ensemble import ensemble_step
from keras_nmt.decoding.forced import force_decode
from keras_nmt.special_ids import BOS_ID, EOS_ID, PAD_ID
from tests.test_beam_search import TABLE, markov_step
from tests.test_model import SOURCE, small_model

# Another Markov table over PAD, BOS, EOS, A, B: after BOS it prefers B.
OTHER = [
    [1, 0, 0, 0, 0],
    [0, 0, 0, 0.2, 0.8],
    [1, 0, 0, 0, 0],
    [0, 0, 0.5, 0.1, 0.4],
    [0, 0, 0.1, 0.6, 0.3],
]


def markov(table):
    return forbid_tokens(markov_step(table), [PAD_ID, BOS_ID])


def unused_state(batch=1):
    return {"unused": tf.zeros([batch, 1])}


def test_an_ensemble_of_one_is_the_model():
    step = markov(TABLE)
    assert ensemble_step([step]) is step


def test_the_ensemble_distribution_is_the_mean_of_the_probabilities():
    step = ensemble_step([markov(TABLE), markov(OTHER)])
    tokens = tf.constant([BOS_ID, 3, 4])
    log_probs, states, _ = step(tokens, (unused_state(3), unused_state(3)))
    expected = (np.array(TABLE)[[BOS_ID, 3, 4]] + np.array(OTHER)[[BOS_ID, 3, 4]]) / 2
    np.testing.assert_allclose(np.exp(log_probs.numpy()), expected, atol=1e-6)
    assert len(states) == 2


def test_an_ensemble_decodes_the_argmax_of_its_own_distribution():
    """Greedy over the ensemble: after BOS the mean is A 0.4, B 0.6 (TABLE alone picks A,
    OTHER alone B); after B the mean is EOS 0.5, A 0.325, B 0.175."""
    greedy = {}
    for name, step in {
        "table": markov(TABLE),
        "other": markov(OTHER),
        "ensemble": ensemble_step([markov(TABLE), markov(OTHER)]),
    }.items():
        state = (unused_state(), unused_state()) if name == "ensemble" else unused_state()
        result = greedy_search(step, tf.fill([1], BOS_ID), state, EOS_ID, tf.fill([1], 4))
        greedy[name] = (result.tokens.numpy()[0].tolist(), float(result.scores[0]))
    assert greedy["table"][0] == [3, 3, 3, 3]  # A A A A (0.6, then 0.35 beats EOS 0.3)
    assert greedy["other"][0] == [4, 3, EOS_ID, PAD_ID]
    assert greedy["ensemble"][0] == [4, EOS_ID, PAD_ID, PAD_ID]
    np.testing.assert_allclose(greedy["ensemble"][1], np.log(0.6 * 0.5), rtol=1e-5)


def test_an_ensemble_of_a_model_with_itself_equals_the_model():
    model = small_model(dropout=0.0)
    step = forbid_tokens(model.step, [PAD_ID, BOS_ID])
    state = model.initial_decoding_state(SOURCE)
    twice = ensemble_step([step, step])
    start, limits = tf.fill([3], BOS_ID), tf.fill([3], 7)
    one = search(step, start, state, EOS_ID, limits, 3, 0.6, 2)
    two = search(twice, start, (state, state), EOS_ID, limits, 3, 0.6, 2)
    np.testing.assert_array_equal(one.tokens, two.tokens)
    np.testing.assert_allclose(one.scores, two.scores, rtol=1e-5)
    np.testing.assert_allclose(one.attention, two.attention, atol=1e-6)


def test_force_decoding_reads_the_known_log_probabilities():
    targets = tf.constant([[3, 4, EOS_ID], [4, EOS_ID, PAD_ID]])
    state = unused_state(2)
    token_log_probs = force_decode(markov(TABLE), tf.fill([2], BOS_ID), state, targets)
    expected = np.log([[0.6, 0.35, 0.9], [0.4, 0.9, 1.0]])  # log 1 = 0 at PAD
    np.testing.assert_allclose(token_log_probs, expected, rtol=1e-5)


def test_force_decoding_a_beam_hypothesis_gives_its_beam_score():
    model = small_model(dropout=0.0)
    step = forbid_tokens(model.step, [PAD_ID, BOS_ID])
    alpha, limits = 0.6, tf.fill([3], 7)
    result = search(step, tf.fill([3], BOS_ID), model.initial_decoding_state(SOURCE), EOS_ID,
                    limits, 4, alpha, 3)  # fmt: skip
    for n in range(3):
        targets = result.tokens[:, n]
        token_log_probs = force_decode(
            step, tf.fill([3], BOS_ID), model.initial_decoding_state(SOURCE), targets
        )
        emitted = tf.reduce_sum(tf.cast(targets != PAD_ID, tf.float32), axis=1)
        scores = tf.reduce_sum(token_log_probs, axis=1) / ((5 + emitted) / 6) ** alpha
        np.testing.assert_allclose(scores, result.scores[:, n], rtol=1e-4)


def one_step_frequencies(table_row, sampling, draws=4000):
    """The empirical distribution of the first token sampled from `table_row` (probabilities
    over PAD, BOS, EOS, A, B) in `draws` sentences."""
    table = [table_row] * 5
    step = markov(table)
    result = search(step, tf.fill([draws], BOS_ID), unused_state(draws), EOS_ID,
                    tf.fill([draws], 1), sampling=sampling)  # fmt: skip
    first = result.tokens.numpy()[:, 0, 0]
    return np.bincount(first, minlength=5) / draws


ROW = [0.0, 0.0, 0.1, 0.3, 0.6]  # EOS 0.1, A 0.3, B 0.6


def test_samples_follow_the_distribution_the_temperature_and_top_k():
    """Within 0.04 of the expected frequencies: 5 standard deviations of 4,000 draws."""
    frequencies = one_step_frequencies(ROW, Sampling(seed=1))
    np.testing.assert_allclose(frequencies, ROW, atol=0.04)
    # Temperature 2: probabilities proportional to p ** (1 / 2).
    flat = np.sqrt(ROW) / np.sqrt(ROW).sum()
    np.testing.assert_allclose(
        one_step_frequencies(ROW, Sampling(temperature=2.0)), flat, atol=0.04
    )
    # Top 2: A and B only, renormalised.
    top2 = [0, 0, 0, 1 / 3, 2 / 3]
    np.testing.assert_allclose(
        one_step_frequencies(ROW, Sampling(top_k=2, seed=3)), top2, atol=0.04
    )
    # Each expectation is more than twice the tolerance away from the untempered, full one.
    for expected in (flat, top2):
        assert np.max(np.abs(np.subtract(expected, ROW))) > 2 * 0.04


def test_the_same_seed_samples_the_same_and_top_1_is_greedy():
    model = small_model(dropout=0.0)
    step = forbid_tokens(model.step, [PAD_ID, BOS_ID])
    state = model.initial_decoding_state(SOURCE)
    start, limits = tf.fill([3], BOS_ID), tf.fill([3], 7)

    def sample(sampling):
        return search(step, start, state, EOS_ID, limits, sampling=sampling)

    first, again = sample(Sampling(seed=5)), sample(Sampling(seed=5))
    np.testing.assert_array_equal(first.tokens, again.tokens)
    np.testing.assert_array_equal(first.scores, again.scores)
    others = [sample(Sampling(seed=seed)).tokens.numpy() for seed in range(6, 12)]
    assert any(not np.array_equal(other, first.tokens) for other in others)
    greedy = search(step, start, state, EOS_ID, limits)
    top1 = sample(Sampling(top_k=1, seed=9))
    np.testing.assert_array_equal(top1.tokens, greedy.tokens)
    np.testing.assert_allclose(top1.scores, greedy.scores, rtol=1e-6)
