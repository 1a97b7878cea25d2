"""Corpus-level scores with sacreBLEU, and the perplexity of references under a model."""

from __future__ import annotations

import dataclasses
import math
import pathlib

import sacrebleu

from keras_nmt.data.corpus import ParallelCorpus
from keras_nmt.errors import DataError


@dataclasses.dataclass(frozen=True)
class Scores:
    """BLEU and chrF (and optionally TER) with their sacreBLEU signatures; `perplexity` of
    the references under the model when it could be computed (run directories)."""

    bleu: float
    chrf: float
    bleu_signature: str
    chrf_signature: str
    sentences: int
    ter: float | None = None
    ter_signature: str | None = None
    perplexity: float | None = None

    def __str__(self) -> str:
        lines = [
            f"BLEU = {self.bleu:.2f}  ({self.bleu_signature})",
            f"chrF = {self.chrf:.2f}  ({self.chrf_signature})",
        ]
        if self.ter is not None:
            lines.append(f"TER = {self.ter:.2f}  ({self.ter_signature})")
        if self.perplexity is not None:
            lines.append(f"perplexity of the references = {self.perplexity:.2f}")
        lines.append(f"sentences = {self.sentences}")
        return "\n".join(lines)


def score(
    hypotheses: list[str], references: list[str], lowercase: bool = False, ter: bool = False
) -> Scores:
    """sacreBLEU's BLEU (13a tokenization) and chrF on detokenized text, cased unless
    `lowercase` (as papers on Multi30k report); TER too if `ter`."""
    if len(hypotheses) != len(references):
        raise DataError(
            "expected as many hypotheses as references, got "
            f"{len(hypotheses)} and {len(references)}"
        )
    bleu = sacrebleu.metrics.BLEU(lowercase=lowercase)
    chrf = sacrebleu.metrics.CHRF(lowercase=lowercase)
    extra = {}
    if ter:
        metric = sacrebleu.metrics.TER(case_sensitive=not lowercase)
        extra = {
            "ter": metric.corpus_score(hypotheses, [references]).score,
            "ter_signature": str(metric.get_signature()),
        }
    return Scores(
        bleu=bleu.corpus_score(hypotheses, [references]).score,
        chrf=chrf.corpus_score(hypotheses, [references]).score,
        bleu_signature=str(bleu.get_signature()),
        chrf_signature=str(chrf.get_signature()),
        sentences=len(hypotheses),
        **extra,
    )


def evaluate(
    translator,
    source: str | pathlib.Path,
    reference: str | pathlib.Path,
    lowercase: bool = False,
    ter: bool = False,
) -> Scores:
    """Translates the `source` file and scores it against the line-aligned `reference` file
    (plain or .gz; a line-count mismatch is a DataError naming both files). With a run
    directory's translator, also the perplexity of the references under the model."""
    corpus = ParallelCorpus(source=pathlib.Path(source), target=pathlib.Path(reference))
    corpus.check()
    sources, references = list(corpus.source_lines()), list(corpus.target_lines())
    scores = score(translator.translate(sources), references, lowercase=lowercase, ter=ter)
    reference_nll = getattr(translator, "reference_nll", None)
    if reference_nll is None:
        return scores
    total, tokens = reference_nll(sources, references)
    return dataclasses.replace(scores, perplexity=math.exp(total / max(tokens, 1)))
