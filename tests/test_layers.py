"""Each layer: config round trip, output shapes, and masking."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_nmt.layers import (
    AdditiveScore,
    BahdanauAttention,
    Bridge,
    Decoder,
    DecoderCell,
    Encoder,
    Generator,
    LayerNormLSTMCell,
    LuongAttention,
    word_dropout_layer,
)

LAYERS = [
    Encoder(
        30, 8, 12, num_layers=2, rnn_type="gru", bidirectional=True, dropout=0.1, word_dropout=0.2
    ),
    Bridge("project", 16, decoder_layers=2, states_per_cell=2),
    AdditiveScore(9, query_bias=False),
    BahdanauAttention(7),
    LuongAttention("concat", 5),
    Generator(11, tied=True),
    DecoderCell(
        8, 12, 16, num_layers=2, rnn_type="lstm", attention="bahdanau", input_feeding=False
    ),
    Decoder(20, 8, 12, 16, attention="dot", tie_embeddings=False, word_dropout=0.1),
    Decoder(20, 8, 12, 16, layer_norm=True),
    Encoder(30, 8, 12, layer_norm=True),
    LayerNormLSTMCell(6, epsilon=1e-3),
]


@pytest.mark.parametrize("layer", LAYERS, ids=lambda layer: type(layer).__name__)
def test_config_round_trip(layer):
    config = layer.get_config()
    clone = type(layer).from_config(config)
    assert clone.get_config() == config


def _source():
    # Sentence 0 is short (padded); sentence 1 is long.
    return tf.constant([[5, 6, 2, 0, 0, 0], [7, 8, 9, 10, 11, 2]])


@pytest.mark.parametrize("rnn_type", ["lstm", "gru", "layer-normalized lstm"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_encoder_shapes_and_padding_invariance(rnn_type, bidirectional):
    layer_norm = rnn_type == "layer-normalized lstm"
    encoder = Encoder(
        20,
        8,
        12,
        num_layers=2,
        rnn_type="lstm" if layer_norm else rnn_type,
        bidirectional=bidirectional,
        layer_norm=layer_norm,
    )
    outputs, states = encoder(_source())
    assert outputs.shape == (2, 6, 12)
    directions = 2 if bidirectional else 1
    per_direction = 12 // directions
    assert len(states) == 2 and all(len(layer) == directions for layer in states)
    assert all(s.shape == (2, per_direction) for layer in states for d in layer for s in d)
    assert np.all(outputs.numpy()[0, 3:] == 0.0)  # padded positions are zero
    alone_outputs, alone_states = encoder(_source()[:1, :3])
    np.testing.assert_allclose(alone_outputs[0], outputs[0, :3], atol=1e-5)
    for layer, alone_layer in zip(states, alone_states):
        for d, alone_d in zip(layer, alone_layer):
            for s, alone_s in zip(d, alone_d):
                np.testing.assert_allclose(alone_s[0], s[0], atol=1e-5)


@pytest.mark.parametrize(
    "attention",
    [
        BahdanauAttention(6),
        LuongAttention("dot"),
        LuongAttention("general"),
        LuongAttention("concat", 6),
    ],
    ids=["bahdanau", "dot", "general", "concat"],
)
def test_attention_is_a_masked_distribution(attention):
    attention.build((None, 10), (None, None, 10))
    rng = np.random.default_rng(0)
    memory = tf.constant(rng.normal(size=(2, 5, 10)), tf.float32)
    query = tf.constant(rng.normal(size=(2, 10)), tf.float32)
    mask = tf.constant([[True, True, False, False, False], [True] * 5])
    context, weights = attention(query, attention.keys(memory), memory, mask)
    assert context.shape == (2, 10) and weights.shape == (2, 5)
    np.testing.assert_allclose(weights.numpy().sum(-1), 1.0, rtol=1e-5)
    assert np.all(weights.numpy()[0, 2:] == 0.0)
    # Changing memory at masked positions changes nothing.
    noisy = tf.concat([memory[:1, :2], memory[:1, 2:] + 100.0], axis=1)
    noisy_context, noisy_weights = attention(query[:1], attention.keys(noisy), noisy, mask[:1])
    np.testing.assert_allclose(noisy_context, context[:1], atol=1e-5)
    np.testing.assert_allclose(noisy_weights, weights[:1], atol=1e-6)


def test_additive_score_is_bahdanau_and_luong_concat():
    """One `AdditiveScore` gives Bahdanau's `v^T tanh(W_q q + b + W_k k_s)` and Luong's
    concat `v^T tanh(W_a [h_t; h_s])`, with `W_a` the query and key matrices stacked."""
    rng = np.random.default_rng(1)
    query = rng.normal(size=(2, 10)).astype("float32")
    memory = rng.normal(size=(2, 5, 8)).astype("float32")
    mask = tf.constant([[True, True, True, False, False], [True] * 5])
    for layer in (BahdanauAttention(6), LuongAttention("concat", 6)):
        layer.build((None, 10), (None, None, 8))
        for variable in layer.weights:  # non-zero biases, so a missing one would show
            variable.assign(rng.normal(size=variable.shape).astype("float32"))
        additive = layer.additive
        w_q, w_k = additive.query_dense.kernel.numpy(), additive.key_dense.kernel.numpy()
        v = additive.score_dense.kernel.numpy()[:, 0]
        if isinstance(layer, BahdanauAttention):
            hidden = (query @ w_q + additive.query_dense.bias.numpy())[:, None] + memory @ w_k
        else:
            assert [w.name for w in layer.weights] == ["kernel"] * 3  # no bias
            h_t = np.broadcast_to(query[:, None], (2, 5, 10))
            hidden = np.concatenate([h_t, memory], -1) @ np.concatenate([w_q, w_k], 0)
        scores = np.where(mask, np.tanh(hidden) @ v, -np.inf)
        expected = np.exp(scores - scores.max(-1, keepdims=True))
        expected /= expected.sum(-1, keepdims=True)
        _, weights = layer(tf.constant(query), layer.keys(tf.constant(memory)), memory, mask)
        np.testing.assert_allclose(weights, expected, atol=1e-5)


def test_dot_attention_rejects_mismatched_widths():
    with pytest.raises(ValueError, match="expected query and memory of one width"):
        LuongAttention("dot").build((None, 8), (None, None, 6))
    with pytest.raises(ValueError, match="score: expected one of"):
        LuongAttention("cosine")


@pytest.mark.parametrize("kind", ["project", "sum", "zeros"])
def test_bridge_shapes(kind):
    encoder = Encoder(20, 8, 12, num_layers=2, bidirectional=True)
    _, states = encoder(_source())
    bridge = Bridge(kind, 6, decoder_layers=2, states_per_cell=2)
    bridge.build(encoder.compute_output_shape((None, None))[1])
    initial = bridge(states)
    assert len(initial) == 2
    assert all(len(layer) == 2 and all(s.shape == (2, 6) for s in layer) for layer in initial)
    if kind == "zeros":
        assert not np.any(np.concatenate([s.numpy() for layer in initial for s in layer]))
    if kind == "sum":
        np.testing.assert_allclose(initial[1][0], states[1][0][0] + states[1][1][0], atol=1e-6)


def test_generator_tied_uses_the_embedding_matrix():
    embedding = keras.layers.Embedding(11, 4)
    embedding.build((None,))
    generator = Generator(11, tied=True)
    generator.build((None, 4))
    assert [w.name for w in generator.weights] == ["bias"]
    x = tf.constant(np.random.default_rng(0).normal(size=(3, 4)), tf.float32)
    expected = x.numpy() @ embedding.embeddings.numpy().T
    np.testing.assert_allclose(generator(x, embeddings=embedding.embeddings), expected, atol=1e-5)
    with pytest.raises(ValueError, match="expected embeddings to be passed"):
        generator(x)


def test_word_dropout_zeroes_whole_tokens_in_training_only():
    layer = word_dropout_layer(0.5)
    embedded = tf.random.uniform((8, 20, 6), 1.0, 2.0)
    dropped = layer(embedded, training=True).numpy()
    kept = np.all(dropped != 0, axis=-1)  # (8, 20): per token, every feature kept or none
    np.testing.assert_array_equal(np.any(dropped != 0, axis=-1), kept)
    np.testing.assert_allclose(dropped[kept], 2.0 * embedded.numpy()[kept], rtol=1e-6)
    assert 0.2 < kept.mean() < 0.8  # 160 draws at 0.5: outside this once in ~10^14 seeds
    np.testing.assert_array_equal(layer(embedded, training=False), embedded)
    assert not word_dropout_layer(0.0).variables  # rate 0: the identity, no seed state


def _layer_norm(x, gain, bias, epsilon=1e-5):
    mean, variance = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
    return (x - mean) / np.sqrt(variance + epsilon) * gain + bias


def test_layer_norm_lstm_cell_is_the_formula_of_ba_et_al():
    cell = LayerNormLSTMCell(5)
    cell.build((None, 3))
    rng = np.random.default_rng(0)
    for norm in (cell.input_norm, cell.recurrent_norm, cell.cell_norm):  # not the 1/0 init
        norm.gamma.assign(rng.uniform(0.5, 1.5, norm.gamma.shape))
        norm.beta.assign(rng.uniform(-0.5, 0.5, norm.beta.shape))
    x, h, c = (rng.normal(size=(4, n)).astype("float32") for n in (3, 5, 5))
    new_h, (state_h, new_c) = cell(x, [h, c])

    def norm(layer, value):
        return _layer_norm(value, layer.gamma.numpy(), layer.beta.numpy())

    z = (
        norm(cell.input_norm, x @ cell.kernel.numpy())
        + norm(cell.recurrent_norm, h @ cell.recurrent_kernel.numpy())
        + cell.bias.numpy()
    )
    i, f, g, o = np.split(z, 4, axis=-1)
    sigmoid = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    expected_c = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
    expected_h = sigmoid(o) * np.tanh(norm(cell.cell_norm, expected_c))
    np.testing.assert_allclose(new_c, expected_c, atol=1e-5)
    np.testing.assert_allclose(new_h, expected_h, atol=1e-5)
    np.testing.assert_array_equal(new_h, state_h)
    np.testing.assert_array_equal(cell.bias.numpy()[5:10], 1.0)  # the forget gate's bias


def test_layer_norm_is_lstm_only():
    with pytest.raises(ValueError, match="only the LSTM cell"):
        Encoder(20, 8, 12, rnn_type="gru", layer_norm=True)
    with pytest.raises(ValueError, match="only the LSTM cell"):
        DecoderCell(8, 12, 16, rnn_type="gru", layer_norm=True)
