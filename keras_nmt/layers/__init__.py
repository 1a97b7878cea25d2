"""Keras layers of the attention encoder-decoder."""

from keras_nmt.layers.attention import AdditiveScore, BahdanauAttention, LuongAttention
from keras_nmt.layers.bridge import Bridge
from keras_nmt.layers.decoder import Decoder
from keras_nmt.layers.decoder_cell import DecoderCell
from keras_nmt.layers.encoder import Encoder
from keras_nmt.layers.generator import Generator

__all__ = [
    "AdditiveScore",
    "BahdanauAttention",
    "Bridge",
    "Decoder",
    "DecoderCell",
    "Encoder",
    "Generator",
    "LuongAttention",
]
