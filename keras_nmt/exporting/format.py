"""What an export holds, for its writers (`exporting.saved_model`, `exporting.tflite`) and
its readers (`inference.saved_model`, `inference.tflite`): signature names, input names, the
metadata (decoding settings, signatures) and where it is stored. No Keras, no model code:
reading an export needs neither."""

from __future__ import annotations

import json
import pathlib

import tensorflow as tf
from tensorflow.lite.python import schema_py_generated as schema

import keras_nmt
from keras_nmt.config import Config

# SavedModel: signature name -> which decoding, and the outputs of
# `Translator.translate_tensors` it returns.
SAVED_MODEL_SIGNATURES = {
    "serving_default": ("beam", ("translation", "score")),
    "translate_greedy": ("greedy", ("translation", "score")),
    "translate_nbest": ("beam", ("translations", "scores")),
    "translate_attention": (
        "beam",
        ("translation", "score", "attention", "source_tokens", "target_tokens"),
    ),
}
SAVED_MODEL_INPUT = "text"
# SavedModel signatures with other inputs: name -> (inputs, outputs). `translate_sample`
# samples (decode.sampling_topk, 0 when unset, and decode.sampling_temperature) with the
# int64 scalar `seed`; `score` force-decodes the `target` translations of `source`.
SAVED_MODEL_OTHER_SIGNATURES = {
    "translate_sample": (("text", "seed"), ("translation", "score")),
    "score": (("source", "target"), ("score", "token_log_probs", "target_tokens")),
}
# The metadata file inside a SavedModel version directory.
SAVED_MODEL_METADATA = pathlib.Path("assets.extra") / "keras_nmt.json"

# TFLite: signature name -> which decoding, its input and its outputs.
TFLITE_SIGNATURES = {
    "translate": ("beam", "text", ("translation", "score")),
    "translate_greedy": ("greedy", "text", ("translation", "score")),
    "translate_ids": ("beam", "source_ids", ("target_ids", "score")),
}
# The name of the flatbuffer metadata entry holding the JSON metadata.
TFLITE_METADATA_NAME = "keras_nmt"
# The only custom ops a TFLite export may contain: tensorflow-text's SentencePiece kernels.
TFLITE_CUSTOM_OPS = ("TFText>FastSentencepieceTokenize", "TFText>FastSentencepieceDetokenize")


def decoding_metadata(config: Config) -> dict:
    """The decoding settings an export is traced with (`config.decode`, `config.export`)."""
    decode = config.decode
    return {
        "beam_size": decode.beam_size,
        "length_penalty": decode.length_penalty,
        "batch_size": decode.batch_size,
        "max_length_ratio": decode.max_length_ratio,
        "max_length_offset": decode.max_length_offset,
        "max_length": decode.max_length,
        "sampling_topk": decode.sampling_topk or 0,
        "sampling_temperature": decode.sampling_temperature,
    }


def saved_model_metadata(config: Config, source_vocab_size: int, target_vocab_size: int) -> dict:
    """The JSON written to `SAVED_MODEL_METADATA`. `decode.n_best` is the exported beam: the
    `translate_nbest` signature returns every hypothesis of the beam."""
    return {
        "keras_nmt_version": keras_nmt.__version__,
        "tensorflow_version": tf.__version__,
        "input": SAVED_MODEL_INPUT,
        "signatures": {
            **{name: list(keys) for name, (_, keys) in SAVED_MODEL_SIGNATURES.items()},
            **{name: list(keys) for name, (_, keys) in SAVED_MODEL_OTHER_SIGNATURES.items()},
        },
        "decode": {**decoding_metadata(config), "n_best": config.decode.beam_size},
        "max_input_tokens": config.export.max_input_tokens,
        "source_vocab_size": source_vocab_size,
        "target_vocab_size": target_vocab_size,
    }


def tflite_metadata(config: Config, quantize: str) -> dict:
    """The JSON stored under `TFLITE_METADATA_NAME` in a `.tflite` file."""
    return {
        "keras_nmt_version": keras_nmt.__version__,
        "signatures": {
            name: {"inputs": [inputs], "outputs": list(outputs)}
            for name, (_, inputs, outputs) in TFLITE_SIGNATURES.items()
        },
        "decode": decoding_metadata(config),
        "max_input_tokens": config.export.max_input_tokens,
        "quantize": quantize,
    }


def read_saved_model_metadata(path: pathlib.Path) -> dict:
    """The metadata of the SavedModel version directory `path`; `OSError` or `ValueError`
    if it has none."""
    return json.loads((path / SAVED_MODEL_METADATA).read_text(encoding="utf-8"))


def read_tflite_metadata(model: bytes) -> dict | None:
    """The JSON metadata of a TFLite flatbuffer, or None if it has none."""
    root = schema.Model.GetRootAs(model, 0)
    for i in range(root.MetadataLength()):
        entry = root.Metadata(i)
        if entry.Name().decode() == TFLITE_METADATA_NAME:
            return json.loads(root.Buffers(entry.Buffer()).DataAsNumpy().tobytes())
    return None
