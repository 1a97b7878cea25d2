"""SavedModel export for TensorFlow Serving: raw text in, translations out.

The export holds the whole translation graph of `Translator.translate_function` (tokenization,
truncation, encoder, decoding, detokenization) with the SentencePiece models embedded as
constants; it needs only TensorFlow and tensorflow-text ops to run. Signatures
(method `tensorflow/serving/predict`; `B` is the batch, `n` the exported beam size):

    serving_default    text string[B] -> translation string[B], score float32[B]
                       (the exported decoding: beam search unless decode.beam_size is 1)
    translate_greedy   text string[B] -> translation string[B], score float32[B]
    translate_nbest    text string[B] -> translations string[B, n], scores float32[B, n]
    translate_attention text string[B] -> translation, score, attention float32[B, T, S],
                       source_tokens string[B, S], target_tokens string[B, T]

Layout is TF Serving's: `BASE/NAME/VERSION/` with `saved_model.pb`, `variables/` and
`assets.extra/keras_nmt.json` (the decoding settings and signatures, for humans and for
`keras_nmt.inference.saved_model`; see `exporting.format`). A version is written to a hidden
temporary directory in `BASE` and renamed into place when complete, so TF Serving's watcher
never sees half a model.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import tempfile

import keras
import tensorflow as tf

from keras_nmt.errors import UserError
from keras_nmt.exporting.format import (
    SAVED_MODEL_INPUT,
    SAVED_MODEL_METADATA,
    SAVED_MODEL_OTHER_SIGNATURES,
    SAVED_MODEL_SIGNATURES,
    saved_model_metadata,
)
from keras_nmt.inference.translator import Translator


def build_archive(translator: Translator) -> keras.export.ExportArchive:
    """An `ExportArchive` with one endpoint per entry of `SAVED_MODEL_SIGNATURES` and of
    `SAVED_MODEL_OTHER_SIGNATURES`. Variables are tracked through the endpoints (tracking the
    model as well would store every variable twice)."""
    beam_size = translator.config.decode.beam_size
    decoders = {
        "beam": translator.with_decoding(beam_size=beam_size, n_best=beam_size),
        "greedy": translator.with_decoding(beam_size=1, n_best=1),
    }
    archive = keras.export.ExportArchive()
    spec = [tf.TensorSpec([None], tf.string, name=SAVED_MODEL_INPUT)]
    for name, (decoding, keys) in SAVED_MODEL_SIGNATURES.items():
        endpoint = _selecting(decoders[decoding].translate_function, keys)
        archive.add_endpoint(name, endpoint, input_signature=spec)
    specs = {
        "text": tf.TensorSpec([None], tf.string, name="text"),
        "seed": tf.TensorSpec([], tf.int64, name="seed"),
        "source": tf.TensorSpec([None], tf.string, name="source"),
        "target": tf.TensorSpec([None], tf.string, name="target"),
    }
    functions = {
        "translate_sample": lambda text, seed: decoders["greedy"].translate_tensors(text, seed),
        "score": translator.score_function,
    }
    for name, (inputs, keys) in SAVED_MODEL_OTHER_SIGNATURES.items():
        endpoint = _selecting(functions[name], keys)
        archive.add_endpoint(name, endpoint, input_signature=[specs[key] for key in inputs])
    return archive


def _selecting(function, keys: tuple[str, ...]):
    """`function` returning only the outputs `keys` of its dict."""

    def endpoint(*inputs):
        outputs = function(*inputs)
        return {key: outputs[key] for key in keys}

    return endpoint


def next_version(model_dir: pathlib.Path) -> int:
    """One more than the highest numbered version in `model_dir` (1 for none)."""
    versions = [int(p.name) for p in _children(model_dir) if p.name.isdigit() and p.is_dir()]
    return max(versions, default=0) + 1


def _children(path: pathlib.Path) -> list[pathlib.Path]:
    return list(path.iterdir()) if path.is_dir() else []


def export_saved_model(
    translator: Translator,
    base: str | pathlib.Path = "export",
    name: str = "model",
    version: int | None = None,
) -> pathlib.Path:
    """Writes `translator` as `base/name/version` (the next free version when None) and
    returns that path. An existing version is never overwritten."""
    base = pathlib.Path(base)
    if not name or name in (".", "..") or "/" in name or os.sep in name:
        raise UserError(f"--name: expected a directory name, got {name!r}")
    if version is not None and version < 1:
        raise UserError(f"--version: expected a positive integer, got {version}")
    model_dir = base / name
    if model_dir.exists() and not model_dir.is_dir():
        raise UserError(f"{model_dir} exists and is not a directory")
    model_dir.mkdir(parents=True, exist_ok=True)
    version = version or next_version(model_dir)
    final = model_dir / str(version)
    if final.exists():
        raise UserError(f"{final} already exists; choose another --version or remove it")
    # The temporary directory sits in `base`, outside the model's base path that TF Serving
    # watches, and on the same file system, so the rename below is atomic.
    temporary = pathlib.Path(tempfile.mkdtemp(prefix=f".{name}-{version}-", dir=base))
    try:
        build_archive(translator).write_out(str(temporary), verbose=False)
        info = saved_model_metadata(
            translator.config,
            translator.source_tokenizer.vocab_size,
            translator.target_tokenizer.vocab_size,
        )
        (temporary / SAVED_MODEL_METADATA).parent.mkdir(exist_ok=True)
        (temporary / SAVED_MODEL_METADATA).write_text(
            json.dumps(info, indent=2) + "\n", encoding="utf-8"
        )
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o777 & ~umask)  # mkdtemp's 0700 would hide it from a server user
        os.rename(temporary, final)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    return final
