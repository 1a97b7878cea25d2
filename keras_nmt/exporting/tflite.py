"""TFLite export: on-device translation, text in and text out, one sentence per call.

The `.tflite` file holds the whole translator for a batch of one: SentencePiece tokenization
(tensorflow-text's two FastSentencepiece custom ops), truncation, encoder, greedy or beam
search, detokenization. Every other op is a TFLite builtin: no Select TF (Flex) ops, which
neither TF 2.21's `tf.lite.Interpreter` nor ai-edge-litert's can run, their Python packages
having no Flex delegate (google-ai-edge/LiteRT#6458). Signatures:

    translate          text string[] or [1] -> translation string[1], score float32[1]
                       (the exported decoding: beam search unless decode.beam_size is 1)
    translate_greedy   text string[] or [1] -> translation string[1], score float32[1]
    translate_ids      source_ids int32[S] or [1, S] -> target_ids int32[1, T], score float32[1]
                       (SentencePiece ids without EOS, both ways, for apps that tokenize)

Each input is one sentence. Its tensor is declared without a shape (the interpreter allocates
it as a scalar; a caller resizes it to what it passes), and the graph first reshapes it to the
batch of one it was traced for. More than one sentence (text `[2]`, ids `[2, S]`) fails in that
RESHAPE when the signature runs ("num_input_elements != num_output_elements"), and so do empty
text `[0]` and scalar ids.

Route (what converts to builtins with TF 2.21): trace batch-1 endpoints into an ExportArchive
SavedModel (a static batch keeps every shape static, so the Keras LSTM's loops lower to
builtins and no ragged op is needed), then `TFLiteConverter.from_saved_model(...,
signature_keys=...)` with `allow_custom_ops` for the tensorflow-text ops. Converting from
concrete functions instead leaves unfrozen variables that fail at run time.

The decoding settings and signatures are stored as JSON in the flatbuffer's metadata, under
`keras_nmt`.
"""

from __future__ import annotations

import json
import os
import pathlib
import tempfile

import keras
import tensorflow as tf
from tensorflow.lite.python import schema_py_generated as schema
from tensorflow.lite.tools import flatbuffer_utils

from keras_nmt.config import TFLITE_QUANTIZATIONS
from keras_nmt.errors import UserError
from keras_nmt.exporting.format import (
    TFLITE_METADATA_NAME,
    TFLITE_SIGNATURES,
    tflite_metadata,
)
from keras_nmt.inference.translator import Translator


def build_archive(translator: Translator) -> keras.export.ExportArchive:
    """An ExportArchive with the batch-1 endpoints of `TFLITE_SIGNATURES`."""
    decoders = {
        "beam": translator.with_decoding(n_best=1),
        "greedy": translator.with_decoding(beam_size=1, n_best=1),
    }
    # Any shape: each endpoint reshapes its input to one sentence (see `_endpoint`).
    specs = {
        "text": tf.TensorSpec(None, tf.string, name="text"),
        "source_ids": tf.TensorSpec(None, tf.int32, name="source_ids"),
    }
    archive = keras.export.ExportArchive()
    for name, (decoding, kind, _) in TFLITE_SIGNATURES.items():
        archive.add_endpoint(
            name, _endpoint(decoders[decoding], kind), input_signature=[specs[kind]]
        )
    return archive


def _endpoint(translator: Translator, kind: str):
    """The traced function of one signature. Its input holds one sentence in any shape (text
    `()` or `[1]`, ids `[S]` or `[1, S]`) and is reshaped first to the batch of one the
    translator is traced for (`[1]`, `[1, S]`): the batch dimension stays static everywhere
    after it, and more than one sentence fails in that reshape instead of being translated
    in part."""
    if kind == "source_ids":

        def translate_ids(source_ids):
            source_ids = tf.reshape(source_ids, [1, tf.shape(source_ids)[-1]])  # (1, S)
            return translator.translate_ids_tensors(source_ids)

        return translate_ids

    def translate(text):
        outputs = translator.translate_tensors(tf.reshape(text, [1]))
        return {"translation": outputs["translation"], "score": outputs["score"]}

    return translate


def convert(saved_model_dir: str | pathlib.Path, quantize: str = "none") -> bytes:
    """The SavedModel's `TFLITE_SIGNATURES` as a TFLite flatbuffer of builtins and
    `TFLITE_CUSTOM_OPS`."""
    _check_quantize(quantize)
    converter = tf.lite.TFLiteConverter.from_saved_model(
        str(saved_model_dir), signature_keys=list(TFLITE_SIGNATURES)
    )
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    converter.allow_custom_ops = True
    if quantize == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif quantize == "dynamic_range":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    return converter.convert()


def _check_quantize(quantize: str) -> None:
    if quantize not in TFLITE_QUANTIZATIONS:
        choices = ", ".join(TFLITE_QUANTIZATIONS)
        raise UserError(f"--quantize: expected one of {choices}, got {quantize}")


def add_metadata(model: bytes, name: str, value: dict) -> bytes:
    """`model` with a metadata entry `name` holding `value` as UTF-8 JSON."""
    tree = flatbuffer_utils.read_model_from_bytearray(bytearray(model))
    buffer = schema.BufferT()
    buffer.data = bytearray(json.dumps(value).encode("utf-8"))
    tree.buffers.append(buffer)
    entry = schema.MetadataT()
    entry.name = name
    entry.buffer = len(tree.buffers) - 1
    tree.metadata = [*(tree.metadata or []), entry]
    return bytes(flatbuffer_utils.convert_object_to_bytearray(tree))


def operator_codes(model: bytes) -> list[str]:
    """The names of the operators a TFLite flatbuffer uses: builtins by name (e.g.
    `FULLY_CONNECTED`), custom ops by their custom code (Flex ops are `Flex...`)."""
    builtins = {code: name for name, code in vars(schema.BuiltinOperator).items()}
    root = schema.Model.GetRootAs(model, 0)
    names = []
    for i in range(root.OperatorCodesLength()):
        code = root.OperatorCodes(i)
        builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
        if builtin == schema.BuiltinOperator.CUSTOM:
            names.append(code.CustomCode().decode())
        else:
            names.append(builtins[builtin])
    return names


def export_tflite(
    translator: Translator, output: str | pathlib.Path, quantize: str = "none"
) -> pathlib.Path:
    """Writes `translator` to the `.tflite` file `output` (atomically: a temporary file in the
    same directory, renamed into place) and returns its path."""
    output = pathlib.Path(output)
    if output.suffix != ".tflite":
        raise UserError(f"--output: expected a FILE.tflite, got {output}")
    _check_quantize(quantize)
    output.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".keras_nmt_tflite_", dir=output.parent) as work:
        saved_model = pathlib.Path(work) / "saved_model"
        build_archive(translator).write_out(str(saved_model), verbose=False)
        model = add_metadata(
            convert(saved_model, quantize),
            TFLITE_METADATA_NAME,
            tflite_metadata(translator.config, quantize),
        )
        flex = [name for name in operator_codes(model) if name.startswith("Flex")]
        if flex:  # the converter was told builtins only; this guards against a regression
            raise RuntimeError(f"the TFLite model needs Select TF ops: {flex}")
        temporary = pathlib.Path(work) / output.name
        temporary.write_bytes(model)
        os.replace(temporary, output)
    return output
