"""`TFLiteTranslator`: translating with a `.tflite` export in the LiteRT interpreter.

It runs the file as an app would: `ai_edge_litert.interpreter.InterpreterWithCustomOps` with
tensorflow-text's SentencePiece kernels registered
(`tensorflow_text.tflite_registrar.SELECT_TFTEXT_OPS`), one sentence per call.
"""

from __future__ import annotations

import pathlib

import numpy as np

from keras_nmt.errors import UserError
from keras_nmt.exporting.tflite import read_metadata
from keras_nmt.translator import (
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
        from ai_edge_litert.interpreter import InterpreterWithCustomOps
        from tensorflow_text import tflite_registrar

        path = pathlib.Path(path)
        try:
            model = path.read_bytes()
        except OSError as error:
            raise UserError(f"cannot read {path}: {error.strerror}") from None
        try:
            info = read_metadata(model)
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
    ) -> TFLiteTranslator:
        """Greedy (beam 1) or the exported beam; one hypothesis per sentence; the exported
        length penalty."""
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

    def translate_one(self, sentence: str | bytes) -> tuple[bytes, float]:
        """One sentence's translation (UTF-8 bytes) and score."""
        text = sentence.encode("utf-8") if isinstance(sentence, str) else sentence
        outputs = self.runner(text=np.array([text], dtype=object))
        return outputs["translation"][0], float(outputs["score"][0])

    def translate_ids(self, source_ids: list[int]) -> tuple[list[int], float]:
        """SentencePiece ids (no EOS) in, the best hypothesis's ids (no EOS) and score out;
        always the exported decoding."""
        runner = self.interpreter.get_signature_runner("translate_ids")
        outputs = runner(source_ids=np.array([source_ids], dtype=np.int32))
        return outputs["target_ids"][0].tolist(), float(outputs["score"][0])

    def translate_batch(self, sentences: list[str]) -> tuple[np.ndarray, np.ndarray]:
        results = [self.translate_one(sentence) for sentence in sentences]
        texts = np.array([[text] for text, _ in results], dtype=object).reshape(-1, 1)
        scores = np.array([[score] for _, score in results], dtype=np.float32).reshape(-1, 1)
        return texts, scores
