"""The model: teacher forcing equals step-by-step decoding, masking, the untrained loss."""

import itertools
import math

import numpy as np
import pytest
import tensorflow as tf

from keras_nmt.data.pipeline import teacher_forcing
from keras_nmt.models.losses import MaskedNLL, token_losses
from keras_nmt.models.seq2seq import Seq2Seq

SOURCE = tf.constant([[5, 6, 7, 8, 2], [9, 10, 2, 0, 0], [11, 2, 0, 0, 0]])
DECODER_INPUT = tf.constant([[1, 4, 5, 6], [1, 7, 8, 0], [1, 9, 0, 0]])


def small_model(**overrides):
    options = dict(
        embedding_dim=8,
        encoder_units=12,
        decoder_units=12,
        attention_units=6,
        dropout=0.2,
        word_dropout=0.1,
        encoder_layers=2,
        decoder_layers=2,
        attention="general",
    )
    options.update(overrides)
    model = Seq2Seq(30, 25, **options)
    model.build()
    return model


VARIANTS = [
    (*variant, False)
    for variant in itertools.product(
        ["bahdanau", "dot", "general", "concat"], [True, False], ["lstm", "gru"], [True, False]
    )
] + [  # layer-normalized LSTM cells
    (attention, input_feeding, "lstm", bidirectional, True)
    for attention, input_feeding, bidirectional in [
        ("bahdanau", True, True),
        ("general", True, False),
        ("dot", False, True),
        ("concat", False, False),
    ]
]


@pytest.mark.parametrize("attention, input_feeding, rnn_type, bidirectional, layer_norm", VARIANTS)
def test_step_by_step_equals_teacher_forcing(
    attention, input_feeding, rnn_type, bidirectional, layer_norm
):
    model = small_model(
        attention=attention,
        input_feeding=input_feeding,
        rnn_type=rnn_type,
        bidirectional=bidirectional,
        layer_norm=layer_norm,
        bridge="project" if bidirectional else "sum",
        encoder_layers=2,
        decoder_layers=2,
    )
    logits = model({"source": SOURCE, "decoder_input": DECODER_INPUT})
    assert logits.shape == (3, 4, 25) and logits.dtype == tf.float32
    expected = tf.nn.log_softmax(logits).numpy()
    state = model.initial_decoding_state(SOURCE)
    for t in range(DECODER_INPUT.shape[1]):
        log_probs, state, attention_weights = model.step(DECODER_INPUT[:, t], state)
        np.testing.assert_allclose(log_probs, expected[:, t], atol=1e-5)
        assert attention_weights.shape == (3, 5)
        np.testing.assert_allclose(attention_weights.numpy().sum(-1), 1.0, rtol=1e-5)


def test_a_sentence_does_not_depend_on_its_batch():
    model = small_model()
    batched = model({"source": SOURCE, "decoder_input": DECODER_INPUT}).numpy()
    for row, (src_len, tgt_len) in enumerate([(5, 4), (3, 3), (2, 2)]):
        alone = model(
            {
                "source": SOURCE[row : row + 1, :src_len],
                "decoder_input": DECODER_INPUT[row : row + 1, :tgt_len],
            }
        ).numpy()
        np.testing.assert_allclose(alone[0], batched[row, :tgt_len], atol=1e-5)


def test_untrained_loss_is_about_log_vocabulary_size():
    vocab = 2000
    model = Seq2Seq(vocab, vocab, embedding_dim=32, encoder_units=64, decoder_units=64)
    model.build()
    rng = np.random.default_rng(0)
    source = tf.constant(rng.integers(4, vocab, size=(16, 12)), tf.int32)
    labels = tf.constant(rng.integers(4, vocab, size=(16, 10)), tf.int32)
    decoder_input = tf.concat([tf.ones([16, 1], tf.int32), labels[:, :-1]], axis=1)
    loss = MaskedNLL()(labels, model({"source": source, "decoder_input": decoder_input}))
    assert abs(float(loss) - math.log(vocab)) < 0.1


def test_loss_ignores_padding_and_weighs_every_token_equally():
    labels = tf.constant([[3, 4, 0, 0], [5, 0, 0, 0]])
    logits = tf.random.stateless_normal((2, 4, 7), seed=(1, 2))
    nll = -tf.gather(tf.nn.log_softmax(logits), labels, axis=2, batch_dims=2).numpy()
    expected = (nll[0, 0] + nll[0, 1] + nll[1, 0]) / 3
    np.testing.assert_allclose(float(MaskedNLL()(labels, logits)), expected, rtol=1e-6)
    smoothed = float(MaskedNLL(0.1)(labels, logits))
    assert smoothed != pytest.approx(expected)


def test_word_dropout_acts_in_training_and_keeps_the_variables_of_a_model_without_it():
    inputs = {"source": SOURCE, "decoder_input": DECODER_INPUT}
    tf.random.set_seed(0)
    model = small_model(dropout=0.0, word_dropout=0.5)
    passes = [model(inputs, training=True).numpy() for _ in range(2)]
    assert not np.allclose(passes[0], passes[1])
    np.testing.assert_array_equal(model(inputs).numpy(), model(inputs).numpy())
    without = small_model(dropout=0.0, word_dropout=0.0)
    assert [v.shape for v in model.trainable_variables] == [
        v.shape for v in without.trainable_variables
    ]
    assert len(model.variables) == len(without.variables) + 2  # one seed state a side


def test_model_config_round_trip():
    model = small_model(attention="concat", tie_embeddings=False)
    clone = Seq2Seq.from_config(model.get_config())
    assert clone.get_config() == model.get_config()


def test_tied_embeddings_share_one_matrix():
    model = small_model(embedding_dim=12, tie_embeddings=True)
    untied = small_model(embedding_dim=12, tie_embeddings=False)
    assert untied.count_params() - model.count_params() == 12 * 25


def test_packed_training_loss_and_gradients_equal_the_padded_ones():
    """Training projects only non-PAD positions and fuses the loss: same value, same
    gradients as MaskedNLL on the full padded logits."""
    model = small_model(dropout=0.0)
    source = tf.constant([[4, 5, 6, 2], [7, 2, 0, 0], [8, 9, 2, 0]])
    inputs, labels = teacher_forcing(source, tf.ragged.constant([[5, 6, 7], [8], [9, 10]]))
    inputs["decoder_input"], labels = inputs["decoder_input"].to_tensor(), labels.to_tensor()
    for smoothing in (0.0, 0.1):
        with tf.GradientTape(persistent=True) as tape:
            padded = MaskedNLL(smoothing)(labels, model(inputs))
            logits, packed_labels = model.packed_logits(inputs, labels)
            packed = tf.reduce_mean(token_losses(packed_labels, logits, smoothing).loss)
        np.testing.assert_allclose(float(packed), float(padded), rtol=1e-6)
        assert packed_labels.numpy().tolist() == [5, 6, 7, 2, 8, 2, 9, 10, 2]
        for a, b in zip(
            tape.gradient(padded, model.trainable_variables),
            tape.gradient(packed, model.trainable_variables),
        ):
            np.testing.assert_allclose(
                tf.convert_to_tensor(a).numpy(), tf.convert_to_tensor(b).numpy(), atol=1e-6
            )


def test_fused_token_losses_equal_log_softmax():
    logits = tf.random.stateless_normal((5, 11), seed=(3, 4)) * 4
    labels = tf.constant([0, 3, 10, 7, 1])
    log_probs = tf.nn.log_softmax(logits)
    nll = -tf.gather(log_probs, labels, batch_dims=1)
    smoothed = 0.8 * nll + 0.2 * -tf.reduce_mean(log_probs, axis=-1)
    loss, plain, correct = token_losses(labels, logits, 0.2)
    np.testing.assert_allclose(plain.numpy(), nll.numpy(), rtol=1e-5)
    np.testing.assert_allclose(loss.numpy(), smoothed.numpy(), rtol=1e-5)
    assert correct.numpy().tolist() == (tf.argmax(logits, -1, tf.int32) == labels).numpy().tolist()
