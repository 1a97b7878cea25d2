"""keras-nmt: attention sequence-to-sequence translation on Keras 3 and TensorFlow.

The package sets Keras's backend to TensorFlow (it tokenizes and exports with TensorFlow ops)
before Keras is first imported; a different `KERAS_BACKEND` in the environment is an error.
It also keeps TensorFlow's start-up quiet on a machine without a GPU (see `keras_nmt.quiet`).
"""

import importlib
import os

from keras_nmt import quiet

if os.environ.setdefault("KERAS_BACKEND", "tensorflow") != "tensorflow":
    raise ImportError(
        "keras_nmt runs on Keras's TensorFlow backend; expected KERAS_BACKEND=tensorflow or "
        f"unset, got KERAS_BACKEND={os.environ['KERAS_BACKEND']}"
    )
quiet.install()

__version__ = "0.1.0"

__all__ = ["Config", "Translator", "load", "train"]

_LAZY = {
    "Config": "keras_nmt.config",
    "Translator": "keras_nmt.inference.translator",
    "load": "keras_nmt.inference.loading",
    "train": "keras_nmt.training.train",
}


def __getattr__(name):
    """`keras_nmt.train`, `keras_nmt.load`, ...: imported on first use, so that
    `import keras_nmt` stays cheap and TensorFlow loads only when needed."""
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'keras_nmt' has no attribute {name!r}")
