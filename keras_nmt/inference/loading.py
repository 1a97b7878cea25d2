"""`load(path)`: the `TextTranslator` for wherever a model lives."""

from __future__ import annotations

import pathlib

from keras_nmt.inference.saved_model import SavedModelTranslator, find_export
from keras_nmt.inference.text_translator import TextTranslator
from keras_nmt.inference.tflite import TFLiteTranslator


def load(path: str | pathlib.Path) -> TextTranslator:
    """Loads a model from any of the places one can live:

    - a `.tflite` export: a `TFLiteTranslator` (LiteRT interpreter, one sentence a call);
    - a SavedModel export (`BASE/NAME/VERSION`), or a model base path (`BASE/NAME`, whose
      highest version is loaded, as TF Serving does): a `SavedModelTranslator`;
    - a run directory (config.yaml, the SentencePiece models, model.weights.h5): a
      `Translator`, running the Keras model in process.
    """
    path = pathlib.Path(path)
    if path.suffix == ".tflite":
        return TFLiteTranslator.load(path)
    export = find_export(path)
    if export is not None:
        return SavedModelTranslator.load(export)
    # Imported here, not above: Keras and the model code load only for a run directory, so
    # that loading an export needs neither.
    from keras_nmt.inference.translator import Translator

    return Translator.load_run_dir(path)
