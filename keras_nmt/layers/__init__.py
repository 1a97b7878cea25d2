"""Keras layers of the attention encoder-decoder."""

from keras_nmt.layers.attention import AdditiveScore, BahdanauAttention, LuongAttention
from keras_nmt.layers.bridge import Bridge
from keras_nmt.layers.decoder import Decoder
from keras_nmt.layers.decoder_cell import DecoderCell
from keras_nmt.layers.encoder import Encoder
from keras_nmt.layers.generator import Generator
from keras_nmt.layers.recurrent import LayerNormLSTMCell
from keras_nmt.layers.word_dropout import word_dropout_layer

__all__ = [
    "AdditiveScore",
    "BahdanauAttention",
    "Bridge",
    "Decoder",
    "DecoderCell",
    "Encoder",
    "Generator",
    "LayerNormLSTMCell",
    "LuongAttention",
    "word_dropout_layer",
]
