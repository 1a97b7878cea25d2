"""keras-nmt: attention sequence-to-sequence translation on Keras 3 and TensorFlow.

The package sets Keras's backend to TensorFlow (it tokenizes and exports with TensorFlow ops)
before Keras is first imported; a different `KERAS_BACKEND` in the environment is an error.
"""

import os

if os.environ.setdefault("KERAS_BACKEND", "tensorflow") != "tensorflow":
    raise ImportError(
        "keras_nmt runs on Keras's TensorFlow backend; expected KERAS_BACKEND=tensorflow or "
        f"unset, got KERAS_BACKEND={os.environ['KERAS_BACKEND']}"
    )
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"
