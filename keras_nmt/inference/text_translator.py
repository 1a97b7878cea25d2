"""`TextTranslator`: what every loaded model offers (`translate`, `translate_with_scores`,
`with_decoding`, `alignment_batch`), whether it runs in process (`inference.translator`),
from a SavedModel export (`inference.saved_model`) or from a TFLite export
(`inference.tflite`); `inference.loading.load` picks among them."""

from __future__ import annotations

import abc
from collections.abc import Iterable, Sequence

import numpy as np

from keras_nmt.errors import UserError


def check_exported_beam(beam_size: int | None, exported: int) -> None:
    """An export decodes only as exported: `beam_size` must be None, 1 (its greedy
    signature) or the exported beam."""
    if beam_size is not None and beam_size not in (1, exported):
        raise UserError(
            f"--beam-size: this export decodes with beam {exported} or greedily (1), got "
            f"{beam_size}; re-export with --set decode.beam_size={beam_size}"
        )


def check_exported_length_penalty(alpha: float | None, exported: float) -> None:
    """An export's length penalty is part of its graph: `alpha` must be None or the same."""
    if alpha is not None and alpha != exported:
        raise UserError(
            f"--length-penalty: this export's is {exported:g}, got {alpha:g}; re-export with "
            f"--set decode.length_penalty={alpha:g}"
        )


class TextTranslator(abc.ABC):
    """Lists of strings in, translations out; subclasses implement `translate_batch` and
    `with_decoding`.

    Attributes:
        n_best: hypotheses returned per sentence by `translate_with_scores`.
        batch_size: sentences per call of `translate_batch` when the caller does not say.
    """

    n_best: int = 1
    batch_size: int = 64

    @abc.abstractmethod
    def translate_batch(self, sentences: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Translates one batch: UTF-8 bytes `(batch, n_best)` and float scores
        `(batch, n_best)`, best first."""

    @abc.abstractmethod
    def with_decoding(
        self,
        beam_size: int | None = None,
        n_best: int | None = None,
        length_penalty: float | None = None,
        sampling_topk: int | None = None,
        sampling_temperature: float | None = None,
        sampling_seed: int | None = None,
    ) -> TextTranslator:
        """The same model decoding with another beam size, number of hypotheses or length
        penalty (GNMT alpha), or sampling (`decode.sampling_*` in the config); None keeps the
        current one."""

    def alignment_batch(self, sentences: list[str]) -> dict[str, np.ndarray]:
        """The best hypotheses' `attention` `(batch, T, S)`, `source_tokens` `(batch, S)` and
        `target_tokens` `(batch, T)` (bytes, "" pads), as the `translate_attention`
        signature returns them."""
        raise UserError(f"{type(self).__name__} has no attention weights to show")

    def score_batch(
        self, sentences: list[str], translations: list[str]
    ) -> tuple[np.ndarray, list[list[tuple[str, float]]]]:
        """The score `translate` would give each translation `(batch,)`, and each one's
        `(piece, log-probability)` pairs, EOS last."""
        raise UserError(f"{type(self).__name__} cannot score given translations")

    def score(
        self, sentences: Sequence[str], translations: Sequence[str], batch_size: int | None = None
    ) -> list[tuple[float, list[tuple[str, float]]]]:
        """`score_batch` over whole lists, in batches of similar translation length (the force
        decoding runs to a batch's longest): per pair, in input order, its score and its
        pieces' log-probabilities."""
        if len(sentences) != len(translations):
            raise UserError(
                f"expected as many translations as sentences, got {len(translations)} and "
                f"{len(sentences)}"
            )
        results: list[tuple[float, list[tuple[str, float]]]] = [(0.0, [])] * len(sentences)
        for batch in _by_length(translations, batch_size or self.batch_size):
            scores, pieces = self.score_batch(
                [sentences[i] for i in batch], [translations[i] for i in batch]
            )
            for index, score, row in zip(batch, scores, pieces):
                results[index] = (float(score), row)
        return results

    def translate(self, sentences: Sequence[str], batch_size: int | None = None) -> list[str]:
        """Translates `sentences`, in batches of similar length; returns them in input order."""
        return [
            hypotheses[0][0] for hypotheses in self.translate_with_scores(sentences, batch_size)
        ]

    def translate_with_scores(
        self, sentences: Sequence[str], batch_size: int | None = None
    ) -> list[list[tuple[str, float]]]:
        """As `translate`, with each sentence's `n_best` hypotheses and their scores (the
        log-probability over GNMT's length penalty), best first."""
        results: list[list[tuple[str, float]]] = [[]] * len(sentences)
        for batch in _by_length(sentences, batch_size or self.batch_size):
            texts, scores = self.translate_batch([sentences[i] for i in batch])
            for index, row_texts, row_scores in zip(batch, texts, scores):
                results[index] = [
                    (text.decode("utf-8", errors="replace"), float(score))
                    for text, score in zip(row_texts, row_scores)
                ]
        return results


def _by_length(texts: Sequence[str], size: int) -> Iterable[list[int]]:
    """The indices of `texts` in batches of `size`, shortest texts first (little padding)."""
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    for start in range(0, len(order), size):
        yield order[start : start + size]


def pieces_and_log_probs(output: dict) -> list[list[tuple[str, float]]]:
    """Per sentence, `(piece, log-probability)` of each target piece and EOS, from the
    `target_tokens` and `token_log_probs` `(batch, T)` of a score output ("" pads)."""
    pieces, log_probs = np.asarray(output["target_tokens"]), np.asarray(output["token_log_probs"])
    return [
        [(piece.decode("utf-8"), float(lp)) for piece, lp in zip(row, values) if piece]
        for row, values in zip(pieces, log_probs)
    ]
