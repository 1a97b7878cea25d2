"""`TFLiteTranslator`: translating with a `.tflite` export in the LiteRT interpreter.

It runs the file as an app would: `ai_edge_litert.interpreter.InterpreterWithCustomOps` with
tensorflow-text's SentencePiece kernels registered
(`tensorflow_text.tflite_registrar.SELECT_TFTEXT_OPS`), one sentence per call.

Text always reaches the interpreter as a `[1]` object array. The signatures also take a 0-d
string, but LiteRT's Python wrapper copies a 0-d array's raw memory as the string: right for
a bytes array (`np.array(b"...")`), while a 0-d object array arrives as the 8 bytes of a
pointer and a 0-d str array as UTF-32, which the model then translates fluently.
"""

from __future__ import annotations

import pathlib

import numpy as np
from ai_edge_litert.interpreter import InterpreterWithCustomOps
from tensorflow_text import tflite_registrar

from keras_nmt.errors import UserError
from keras_nmt.exporting.format import read_tflite_metadata
from keras_nmt.inference.text_translator import (
    TextTranslator,
    check_exported_beam,
    check_exported_length_penalty,
)


class TFLiteTranslator(TextTranslator):
    """A loaded `.tflite` export; `signature` is the one `translate_batch` runs."""

    batch_size = 1

    def __init__(self, interpreter, path: pathlib.Path, info: dict, signature: str = "translate"):
        self.interpreter = interpreter
        self.path = path
        self.info = info
        self.signature = signature
        self.runner = interpreter.get_signature_runner(signature)

    @classmethod
    def load(cls, path: str | pathlib.Path, threads: int | None = None) -> TFLiteTranslator:
        path = pathlib.Path(path)
        try:
            model = path.read_bytes()
        except OSError as error:
            raise UserError(f"cannot read {path}: {error.strerror}") from None
        try:
            info = read_tflite_metadata(model)
        except Exception:  # noqa: BLE001  (not a flatbuffer at all)
            info = None
        if info is None:
            raise UserError(f"{path} is not a keras-nmt TFLite export")
        interpreter = InterpreterWithCustomOps(
            custom_op_registerers=tflite_registrar.SELECT_TFTEXT_OPS,
            model_content=model,
            num_threads=threads,
        )
        return cls(interpreter, path, info)

    def with_decoding(
        self,
        beam_size: int | None = None,
        n_best: int | None = None,
        length_penalty: float | None = None,
        sampling_topk: int | None = None,
        sampling_temperature: float | None = None,
        sampling_seed: int | None = None,
    ) -> TFLiteTranslator:
        """Greedy (beam 1) or the exported beam; one hypothesis per sentence; the exported
        length penalty."""
        if (sampling_topk, sampling_temperature, sampling_seed) != (None, None, None):
            raise UserError("a TFLite export does not sample; use a SavedModel export")
        check_exported_beam(beam_size, self.info["decode"]["beam_size"])
        check_exported_length_penalty(length_penalty, self.info["decode"]["length_penalty"])
        if n_best not in (None, 1):
            raise UserError(f"--n-best: a TFLite export returns one hypothesis, got {n_best}")
        signature = "translate_greedy" if beam_size == 1 else "translate"
        return TFLiteTranslator(self.interpreter, self.path, self.info, signature)

    def alignment_batch(self, sentences: list[str]) -> dict[str, np.ndarray]:
        raise UserError(
            "a TFLite export has no attention output; plot from the run directory or a "
            "SavedModel export"
        )

    def translate_one(self, sentence: str | bytes | np.ndarray) -> tuple[bytes, float]:
        """One sentence's translation (UTF-8 bytes) and score. `sentence` is a str or bytes,
        or an array holding exactly one (shape `()` or `(1,)`); more is a ValueError."""
        outputs = self.runner(text=np.array([_one_text(sentence)], dtype=object))
        return outputs["translation"][0], float(outputs["score"][0])

    def translate_ids(self, source_ids) -> tuple[list[int], float]:
        """One sentence's SentencePiece ids (no EOS), shape `(S,)` or `(1, S)`, in; the best
        hypothesis's ids (no EOS) and score out; always the exported decoding. Another shape
        (several sentences) is a ValueError."""
        ids = np.asarray(source_ids, dtype=np.int32)
        if ids.ndim == 2 and ids.shape[0] == 1:
            ids = ids[0]
        if ids.ndim != 1:
            raise ValueError(
                "translate_ids: expected one sentence's ids, of shape (S,) or (1, S), got shape "
                f"{ids.shape}"
            )
        runner = self.interpreter.get_signature_runner("translate_ids")
        outputs = runner(source_ids=ids[None, :])
        return outputs["target_ids"][0].tolist(), float(outputs["score"][0])

    def translate_batch(self, sentences: list[str]) -> tuple[np.ndarray, np.ndarray]:
        results = [self.translate_one(sentence) for sentence in sentences]
        texts = np.array([[text] for text, _ in results], dtype=object).reshape(-1, 1)
        scores = np.array([[score] for _, score in results], dtype=np.float32).reshape(-1, 1)
        return texts, scores


def _one_text(sentence) -> bytes:
    """`sentence` as UTF-8 bytes: a str, bytes, or an array-like holding exactly one of them."""
    if not isinstance(sentence, str | bytes):
        values = np.asarray(sentence, dtype=object).reshape(-1)
        if values.size != 1:
            raise ValueError(
                "a TFLite export translates one sentence per call: expected a str, bytes or an "
                f"array of one, got an array of shape {np.shape(sentence)}"
            )
        sentence = values[0]
    if isinstance(sentence, str):
        return sentence.encode("utf-8")
    if isinstance(sentence, bytes):
        return sentence
    raise ValueError(f"expected a sentence as str or bytes, got {type(sentence).__name__}")
