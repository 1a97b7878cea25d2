"""Greedy decoding, driven by a fake step function whose answers are known, and by a model."""

import numpy as np
import tensorflow as tf

from keras_nmt.decoding import forbid_tokens, greedy_search
from keras_nmt.special_ids import BOS_ID, EOS_ID, PAD_ID
from tests.test_model import SOURCE, small_model

VOCAB = 8


def table_step(tables):
    """A fake step: sentence b at step t gets the distribution `tables[b][t]` (state: t, and
    b, which the step passes through; a search may step any subset of the rows)."""
    log_probs = tf.math.log(tf.constant(tables, tf.float32))  # (batch, T, V)

    def step(tokens, state):
        t, sentence = state["t"], state["sentence"]
        at = tf.stack([sentence, tf.minimum(t, log_probs.shape[1] - 1)], axis=1)
        rows = tf.gather_nd(log_probs, at)
        attention = tf.one_hot(tf.minimum(t, 2), 3) * tf.ones_like(rows[:, :1])
        return rows, {"t": t + 1, "sentence": sentence}, attention

    return step


def dist(token, p=0.7):
    row = np.full(VOCAB, (1 - p) / (VOCAB - 1))
    row[token] = p
    return row.tolist()


def run(tables, max_lengths):
    batch = len(tables)
    return greedy_search(
        table_step(tables),
        tf.fill([batch], BOS_ID),
        {"t": tf.zeros([batch], tf.int32), "sentence": tf.range(batch)},
        EOS_ID,
        tf.constant(max_lengths, tf.int32),
    )


def test_tokens_lengths_and_scores_are_exact():
    tables = [
        [dist(5), dist(6, 0.9), dist(EOS_ID, 0.8), dist(7), dist(7)],
        [dist(EOS_ID, 0.6), dist(4), dist(4), dist(4), dist(4)],
        [dist(4), dist(4), dist(4), dist(4), dist(4)],  # never ends: stops at its maximum
    ]
    result = run(tables, [5, 5, 3])
    assert result.tokens.numpy().tolist() == [
        [5, 6, EOS_ID, PAD_ID, PAD_ID],
        [EOS_ID, PAD_ID, PAD_ID, PAD_ID, PAD_ID],
        [4, 4, 4, PAD_ID, PAD_ID],
    ]
    assert result.lengths.numpy().tolist() == [2, 0, 3]
    np.testing.assert_allclose(result.scores, np.log([0.7 * 0.9 * 0.8, 0.6, 0.7**3]), rtol=1e-5)
    assert result.attention.shape == (3, 5, 3)
    # Attention is written for emitted tokens and zero afterwards.
    np.testing.assert_allclose(result.attention[0, :3], np.eye(3), atol=1e-6)
    assert not np.any(result.attention.numpy()[1, 1:])


def test_empty_batch_and_batch_of_one():
    empty = greedy_search(
        table_step(np.ones((0, 2, VOCAB))),
        tf.zeros([0], tf.int32),
        {"t": tf.zeros([0], tf.int32), "sentence": tf.zeros([0], tf.int32)},
        EOS_ID,
        tf.zeros([0], tf.int32),
    )
    assert empty.tokens.shape[0] == 0 and empty.scores.shape == (0,)
    one = run([[dist(3), dist(EOS_ID)]], [4])
    assert one.tokens.numpy().tolist() == [[3, EOS_ID, PAD_ID, PAD_ID]]


def test_zero_maximum_length_emits_nothing():
    result = run([[dist(5)], [dist(6)]], [0, 2])
    assert result.lengths.numpy().tolist() == [0, 2]
    assert result.scores.numpy()[0] == 0.0


def test_forbidden_tokens_are_never_chosen():
    first = [0.5, 0.3, 0.02, 0.02, 0.02, 0.1, 0.02, 0.02]  # PAD, then BOS, then token 5
    tables = [[first, dist(EOS_ID, 0.9)]]
    step = forbid_tokens(table_step(tables), [PAD_ID, BOS_ID])
    result = greedy_search(
        step,
        tf.fill([1], BOS_ID),
        {"t": tf.zeros([1], tf.int32), "sentence": tf.zeros([1], tf.int32)},
        EOS_ID,
        tf.constant([3]),
    )
    tokens = result.tokens.numpy()[0].tolist()
    assert tokens == [5, EOS_ID, PAD_ID]
    np.testing.assert_allclose(result.scores[0], np.log(0.1) + np.log(0.9), rtol=1e-5)


def test_greedy_on_a_model_is_the_argmax_of_its_own_teacher_forced_pass():
    model = small_model(dropout=0.0)
    state = model.initial_decoding_state(SOURCE)
    step = forbid_tokens(model.step, [PAD_ID, BOS_ID])
    result = tf.function(greedy_search, reduce_retracing=True)(
        step, tf.fill([3], BOS_ID), state, EOS_ID, tf.constant([6, 6, 6])
    )
    tokens = result.tokens.numpy()
    decoder_input = np.concatenate([np.full((3, 1), BOS_ID), tokens[:, :-1]], axis=1)
    log_probs = tf.nn.log_softmax(model({"source": SOURCE, "decoder_input": decoder_input}))
    for row in range(3):
        n = int((tokens[row] != PAD_ID).sum())
        chosen = log_probs.numpy()[row, np.arange(n), tokens[row, :n]]
        # Each emitted token is a maximum of its step's distribution, PAD and BOS excluded
        # (ties within rounding).
        allowed = log_probs.numpy()[row, :n, 2:]
        np.testing.assert_array_less(np.max(allowed, axis=-1) - 1e-5, chosen)
        np.testing.assert_allclose(result.scores[row], chosen.sum(), rtol=1e-4)


def test_finished_sentences_are_not_stepped():
    """Each step runs on the sentences still decoding only (a step costs a vocabulary
    projection per row)."""
    stepped = []
    tables = [
        [dist(5), dist(6), dist(EOS_ID), dist(7)],  # ends at t = 2
        [dist(EOS_ID), dist(4), dist(4), dist(4)],  # ends at t = 0
        [dist(4), dist(4), dist(4), dist(4)],  # stops at its maximum, 3 tokens
    ]
    inner = table_step(tables)

    def counting_step(tokens, state):
        stepped.append(int(tokens.shape[0]))  # eager: the loop body runs as Python
        return inner(tokens, state)

    result = greedy_search(
        counting_step,
        tf.fill([3], BOS_ID),
        {"t": tf.zeros([3], tf.int32), "sentence": tf.range(3)},
        EOS_ID,
        tf.constant([4, 4, 3]),
    )
    assert result.lengths.numpy().tolist() == [2, 0, 3]
    # All three first; then sentences 0 and 2 twice; the last step, after everything has
    # ended, gets one row instead of an empty batch (its result is not used).
    assert stepped == [3, 2, 2, 1]
