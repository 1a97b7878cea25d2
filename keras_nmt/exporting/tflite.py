"""TFLite export: on-device translation, text in and text out, one sentence per call.

The `.tflite` file holds the whole translator for a batch of one: SentencePiece tokenization
(tensorflow-text's two FastSentencepiece custom ops), truncation, encoder, greedy or beam
search, detokenization. Every other op is a TFLite builtin: no Select TF (Flex) ops, which no
Python interpreter here can run (google-ai-edge/LiteRT#6458). Signatures:

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

Route (what converts to builtins here): trace batch-1 endpoints into an ExportArchive
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

from keras_nmt.errors import UserError
from keras_nmt.translator import Translator

QUANTIZATIONS = ("none", "float16", "dynamic_range")
SIGNATURES = {
    "translate": ("beam", "text"),
    "translate_greedy": ("greedy", "text"),
    "translate_ids": ("beam", "ids"),
}
METADATA_NAME = "keras_nmt"
# The only custom ops the file may contain: tensorflow-text's SentencePiece kernels.
CUSTOM_OPS = ("TFText>FastSentencepieceTokenize", "TFText>FastSentencepieceDetokenize")


def build_archive(translator: Translator) -> keras.export.ExportArchive:
    """An ExportArchive with the batch-1 endpoints of `SIGNATURES`."""
    decoders = {
        "beam": translator.with_decoding(n_best=1),
        "greedy": translator.with_decoding(beam_size=1, n_best=1),
    }
    # Any shape: each endpoint reshapes its input to one sentence (see `_endpoint`).
    specs = {
        "text": tf.TensorSpec(None, tf.string, name="text"),
        "ids": tf.TensorSpec(None, tf.int32, name="source_ids"),
    }
    archive = keras.export.ExportArchive()
    for name, (decoding, kind) in SIGNATURES.items():
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
    if kind == "ids":

        def translate_ids(source_ids):
            source_ids = tf.reshape(source_ids, [1, tf.shape(source_ids)[-1]])  # (1, S)
            return translator.translate_ids_graph(source_ids)

        return translate_ids

    def translate(text):
        outputs = translator.translate_graph(tf.reshape(text, [1]))
        return {"translation": outputs["translation"], "score": outputs["score"]}

    return translate


def convert(saved_model_dir: str | pathlib.Path, quantize: str = "none") -> bytes:
    """The SavedModel's `SIGNATURES` as a TFLite flatbuffer of builtins and `CUSTOM_OPS`."""
    if quantize not in QUANTIZATIONS:
        raise UserError(f"--quantize: expected one of {', '.join(QUANTIZATIONS)}, got {quantize}")
    converter = tf.lite.TFLiteConverter.from_saved_model(
        str(saved_model_dir), signature_keys=list(SIGNATURES)
    )
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    converter.allow_custom_ops = True
    if quantize == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif quantize == "dynamic_range":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    return converter.convert()


def metadata(translator: Translator, quantize: str) -> dict:
    decode = translator.config.decode
    return {
        "signatures": {
            "translate": {"inputs": ["text"], "outputs": ["translation", "score"]},
            "translate_greedy": {"inputs": ["text"], "outputs": ["translation", "score"]},
            "translate_ids": {"inputs": ["source_ids"], "outputs": ["target_ids", "score"]},
        },
        "decode": {
            "beam_size": decode.beam_size,
            "length_penalty": decode.length_penalty,
            "max_length_ratio": decode.max_length_ratio,
            "max_length_offset": decode.max_length_offset,
            "max_length": decode.max_length,
        },
        "max_input_tokens": translator.config.export.max_input_tokens,
        "quantize": quantize,
    }


def add_metadata(model: bytes, name: str, value: dict) -> bytes:
    """`model` with a metadata entry `name` holding `value` as UTF-8 JSON."""
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    tree = flatbuffer_utils.read_model_from_bytearray(bytearray(model))
    buffer = schema.BufferT()
    buffer.data = bytearray(json.dumps(value).encode("utf-8"))
    tree.buffers.append(buffer)
    entry = schema.MetadataT()
    entry.name = name
    entry.buffer = len(tree.buffers) - 1
    tree.metadata = [*(tree.metadata or []), entry]
    return bytes(flatbuffer_utils.convert_object_to_bytearray(tree))


def read_metadata(model: bytes, name: str = METADATA_NAME) -> dict | None:
    """The JSON metadata entry `name` of a TFLite flatbuffer, or None."""
    from tensorflow.lite.python import schema_py_generated as schema

    root = schema.Model.GetRootAs(model, 0)
    for i in range(root.MetadataLength()):
        entry = root.Metadata(i)
        if entry.Name().decode() == name:
            return json.loads(root.Buffers(entry.Buffer()).DataAsNumpy().tobytes())
    return None


def operator_codes(model: bytes) -> list[str]:
    """The names of the operators a TFLite flatbuffer uses: builtins by name (e.g.
    `FULLY_CONNECTED`), custom ops by their custom code (Flex ops are `Flex...`)."""
    from tensorflow.lite.python import schema_py_generated as schema

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
    if quantize not in QUANTIZATIONS:
        raise UserError(f"--quantize: expected one of {', '.join(QUANTIZATIONS)}, got {quantize}")
    output.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".keras_nmt_tflite_", dir=output.parent) as work:
        saved_model = pathlib.Path(work) / "saved_model"
        build_archive(translator).write_out(str(saved_model), verbose=False)
        model = add_metadata(
            convert(saved_model, quantize), METADATA_NAME, metadata(translator, quantize)
        )
        flex = [name for name in operator_codes(model) if name.startswith("Flex")]
        if flex:  # the converter was told builtins only; this guards against a regression
            raise RuntimeError(f"the TFLite model needs Select TF ops: {flex}")
        temporary = pathlib.Path(work) / output.name
        temporary.write_bytes(model)
        os.replace(temporary, output)
    return output
