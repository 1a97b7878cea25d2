"""The layout of a run directory: what training writes and what a translator loads."""

from __future__ import annotations

import csv
import dataclasses
import math
import pathlib


@dataclasses.dataclass(frozen=True)
class RunDir:
    """Paths inside a run directory.

    config.yaml          the effective configuration
    source.model         SentencePiece model of the source language
    target.model         SentencePiece model of the target language
    model.weights.h5     the best weights so far (by `train.best_metric`), what translators load
    backup/ckpt-<step>/  the training state (weights, optimizer, position) for resuming
    epochs/ckpt-<epoch>/ the weights at the end of the last `train.average_last_epochs`
                         epochs (or of the `train.average_best_epochs` best ones)
    averaged/            a run directory holding their average (`averaging.average_run`)
    final/               a run directory holding `averaged/`'s weights or the best epoch's,
                         whichever scores better on the validation set when training ends
    cache/               tokenized corpora too large for memory (`corpus_cache`)
    history.csv          one row of losses and metrics per finished epoch
    logs/                TensorBoard event files
    """

    path: pathlib.Path

    def __init__(self, path: str | pathlib.Path):
        object.__setattr__(self, "path", pathlib.Path(path))

    config = property(lambda self: self.path / "config.yaml")
    source_model = property(lambda self: self.path / "source.model")
    target_model = property(lambda self: self.path / "target.model")
    weights = property(lambda self: self.path / "model.weights.h5")
    backup = property(lambda self: self.path / "backup")
    epochs = property(lambda self: self.path / "epochs")
    averaged = property(lambda self: self.path / "averaged")
    final = property(lambda self: self.path / "final")
    cache = property(lambda self: self.path / "cache")
    history = property(lambda self: self.path / "history.csv")
    logs = property(lambda self: self.path / "logs")

    def finished_epochs(self) -> list[dict[str, float]]:
        """The rows of history.csv, one per finished epoch (empty for a new run). An epoch
        logged twice (a run killed after logging it but before saving its state, then
        resumed) counts once, with its last row."""
        if not self.history.is_file():
            return []
        with open(self.history, newline="", encoding="utf-8") as handle:
            rows = [_numbers(row) for row in csv.DictReader(handle)]
        by_epoch = {row.get("epoch", index): row for index, row in enumerate(rows)}
        return list(by_epoch.values())

    def best(self, metric: str, mode: str) -> float:
        """The best value of `metric` in history.csv (`mode` "min" or "max"), or the worst
        possible value if none was logged."""
        rows = self.finished_epochs()
        values = [row[metric] for row in rows if not math.isnan(row.get(metric, math.nan))]
        if mode == "max":
            return max(values, default=-math.inf)
        return min(values, default=math.inf)


def _numbers(row: dict[str, str]) -> dict[str, float]:
    """The numeric cells of a CSVLogger row (it writes "NA" for a missing value)."""
    values = {}
    for key, text in row.items():
        try:
            values[key] = float(text)
        except (TypeError, ValueError):
            continue
    return values
