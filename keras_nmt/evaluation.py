"""Corpus-level scores with sacreBLEU."""

from __future__ import annotations

import dataclasses
import pathlib

import sacrebleu

from keras_nmt.corpus import ParallelCorpus
from keras_nmt.errors import DataError


@dataclasses.dataclass(frozen=True)
class Scores:
    """BLEU and chrF with their sacreBLEU signatures."""

    bleu: float
    chrf: float
    bleu_signature: str
    chrf_signature: str
    sentences: int

    def __str__(self) -> str:
        return (
            f"BLEU = {self.bleu:.2f}  ({self.bleu_signature})\n"
            f"chrF = {self.chrf:.2f}  ({self.chrf_signature})\n"
            f"sentences = {self.sentences}"
        )


def score(hypotheses: list[str], references: list[str]) -> Scores:
    """sacreBLEU's default BLEU (13a tokenization, cased) and chrF on detokenized text."""
    if len(hypotheses) != len(references):
        raise DataError(
            "expected as many hypotheses as references, got "
            f"{len(hypotheses)} and {len(references)}"
        )
    bleu = sacrebleu.metrics.BLEU()
    chrf = sacrebleu.metrics.CHRF()
    return Scores(
        bleu=bleu.corpus_score(hypotheses, [references]).score,
        chrf=chrf.corpus_score(hypotheses, [references]).score,
        bleu_signature=str(bleu.get_signature()),
        chrf_signature=str(chrf.get_signature()),
        sentences=len(hypotheses),
    )


def evaluate(translator, source: str | pathlib.Path, reference: str | pathlib.Path) -> Scores:
    """Translates the `source` file and scores it against the line-aligned `reference` file
    (plain or .gz; a line-count mismatch is a DataError naming both files)."""
    corpus = ParallelCorpus(source=pathlib.Path(source), target=pathlib.Path(reference))
    corpus.check()
    sources = list(corpus.source_lines())
    hypotheses = translator.translate(sources)
    return score(hypotheses, list(corpus.target_lines()))
