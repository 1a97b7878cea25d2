"""`SavedModelTranslator`: translating with a SavedModel export, through its signatures.

It calls the same signatures TF Serving serves (see `keras_nmt.exporting.saved_model`), so
what `keras-nmt translate --model export/NAME` prints is what a TF Serving client gets.
"""

from __future__ import annotations

import pathlib

import numpy as np
import tensorflow as tf
import tensorflow_text  # noqa: F401  (registers the SentencePiece ops the export uses)

from keras_nmt.errors import UserError
from keras_nmt.exporting.format import (
    SAVED_MODEL_INPUT,
    SAVED_MODEL_METADATA,
    read_saved_model_metadata,
)
from keras_nmt.inference.text_translator import (
    TextTranslator,
    check_exported_beam,
    check_exported_length_penalty,
    pieces_and_log_probs,
)


def find_export(path: pathlib.Path) -> pathlib.Path | None:
    """`path` itself if it is a SavedModel; the highest numbered version if `path` is a
    model base path (as TF Serving picks); otherwise None."""
    if (path / "saved_model.pb").is_file():
        return path
    if path.is_dir():
        versions = [
            child
            for child in path.iterdir()
            if child.name.isdigit() and (child / "saved_model.pb").is_file()
        ]
        if versions:
            return max(versions, key=lambda child: int(child.name))
    return None


class SavedModelTranslator(TextTranslator):
    """A loaded export; `signature` is the one `translate_batch` calls."""

    def __init__(self, loaded, path: pathlib.Path, info: dict, signature: str = "serving_default"):
        self.loaded = loaded
        self.path = path
        self.info = info
        self.signature = signature
        self.n_best = info["decode"]["n_best"] if signature == "translate_nbest" else 1
        self.batch_size = info["decode"]["batch_size"]
        self.seed = 0  # of the translate_sample signature

    @classmethod
    def load(cls, path: str | pathlib.Path) -> SavedModelTranslator:
        path = pathlib.Path(path)
        try:
            info = read_saved_model_metadata(path)
        except (OSError, ValueError) as error:
            raise UserError(
                f"{path} is not a keras-nmt export ({SAVED_MODEL_METADATA}: {error})"
            ) from None
        return cls(tf.saved_model.load(str(path)), path, info)

    def with_decoding(
        self,
        beam_size: int | None = None,
        n_best: int | None = None,
        length_penalty: float | None = None,
        sampling_topk: int | None = None,
        sampling_temperature: float | None = None,
        sampling_seed: int | None = None,
    ) -> SavedModelTranslator:
        """Greedy (beam 1) or the exported beam; n-best up to the exported beam size; the
        exported length penalty; sampling with the exported top-k and temperature, any seed
        (the `translate_sample` signature)."""
        if sampling_topk is not None:
            exported_sampling = (self.info["decode"].get("sampling_topk"),
                                 self.info["decode"].get("sampling_temperature"))  # fmt: skip
            wanted = (sampling_topk, sampling_temperature or exported_sampling[1])
            if "translate_sample" not in self.loaded.signatures or wanted != exported_sampling:
                raise UserError(
                    f"--sampling-topk/--sampling-temperature: this export samples with "
                    f"{exported_sampling}, got {wanted}; re-export with --set "
                    "decode.sampling_topk=K --set decode.sampling_temperature=T"
                )
            translator = SavedModelTranslator(self.loaded, self.path, self.info, "translate_sample")
            translator.seed = sampling_seed or 0
            return translator
        exported = self.info["decode"]["beam_size"]
        check_exported_beam(beam_size, exported)
        check_exported_length_penalty(length_penalty, self.info["decode"]["length_penalty"])
        n_best = n_best or 1
        if beam_size == 1 and n_best > 1:
            raise UserError(f"--n-best: expected 1 with greedy search (beam 1), got {n_best}")
        if n_best > self.info["decode"]["n_best"]:
            raise UserError(
                f"--n-best: this export returns at most {self.info['decode']['n_best']} "
                f"hypotheses, got {n_best}"
            )
        signature = "translate_greedy" if beam_size == 1 and exported > 1 else "serving_default"
        signature = "translate_nbest" if n_best > 1 else signature
        translator = SavedModelTranslator(self.loaded, self.path, self.info, signature)
        translator.n_best = n_best
        return translator

    def alignment_batch(self, sentences: list[str]) -> dict[str, np.ndarray]:
        """From the `translate_attention` signature (the exported beam search)."""
        outputs = self.loaded.signatures["translate_attention"](
            **{SAVED_MODEL_INPUT: tf.constant(sentences, tf.string)}
        )
        keys = ("attention", "source_tokens", "target_tokens")
        return {key: outputs[key].numpy() for key in keys}

    def score_batch(
        self, sentences: list[str], translations: list[str]
    ) -> tuple[np.ndarray, list[list[tuple[str, float]]]]:
        """From the `score` signature (the exported length penalty)."""
        if "score" not in self.loaded.signatures:
            raise UserError(f"{self.path} has no score signature; export it again")
        outputs = self.loaded.signatures["score"](
            source=tf.constant(sentences, tf.string), target=tf.constant(translations, tf.string)
        )
        outputs = {key: value.numpy() for key, value in outputs.items()}
        return outputs["score"], pieces_and_log_probs(outputs)

    def translate_batch(self, sentences: list[str]) -> tuple[np.ndarray, np.ndarray]:
        function = self.loaded.signatures[self.signature]
        inputs = {SAVED_MODEL_INPUT: tf.constant(sentences, tf.string)}
        if self.signature == "translate_sample":
            inputs["seed"] = tf.constant(self.seed, tf.int64)
        outputs = function(**inputs)
        if self.signature == "translate_nbest":
            return (
                outputs["translations"].numpy()[:, : self.n_best],
                outputs["scores"].numpy()[:, : self.n_best],
            )
        return outputs["translation"].numpy()[:, None], outputs["score"].numpy()[:, None]
