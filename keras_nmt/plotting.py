"""Attention pictures: one heatmap per sentence, source subwords across, target subwords down.

Rendered with matplotlib's non-interactive Agg backend (no display needed).
"""

from __future__ import annotations

import pathlib
from collections.abc import Sequence

import numpy as np

DPI = 100
CELL_INCHES = 0.35  # each source column and target row
MARGIN_INCHES = 1.5  # room for the tick labels


def figure_size(source_length: int, target_length: int) -> tuple[float, float]:
    """The figure's (width, height) in inches for a `target_length x source_length` map."""
    return (
        max(3.0, CELL_INCHES * source_length + MARGIN_INCHES),
        max(2.0, CELL_INCHES * target_length + MARGIN_INCHES),
    )


def trim(attention: np.ndarray, source_tokens: Sequence, target_tokens: Sequence):
    """Drops the padding ("" tokens): `attention` `(T, S)` -> `(t, s)`, and the two token
    lists as str."""
    source = [_text(token) for token in source_tokens]
    target = [_text(token) for token in target_tokens]
    s = sum(1 for token in source if token)
    t = sum(1 for token in target if token)
    return np.asarray(attention)[:t, :s], source[:s], target[:t]


def _text(token) -> str:
    return token.decode("utf-8", errors="replace") if isinstance(token, bytes) else str(token)


def plot_attention(
    attention: np.ndarray,
    source_tokens: Sequence[str],
    target_tokens: Sequence[str],
    path: str | pathlib.Path,
    title: str | None = None,
) -> pathlib.Path:
    """Writes a PNG heatmap of `attention` `(T, S)` (row t: target token t's weights over
    the source tokens) with the tokens as tick labels; returns its path."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure, axes = pyplot.subplots(figsize=figure_size(len(source_tokens), len(target_tokens)))
    try:
        image = axes.imshow(attention, cmap="Greys", vmin=0.0, vmax=1.0, aspect="auto")
        axes.set_xticks(range(len(source_tokens)), labels=source_tokens, rotation=90)
        axes.set_yticks(range(len(target_tokens)), labels=target_tokens)
        axes.set_xlabel("source")
        axes.set_ylabel("target")
        if title:
            axes.set_title(title, fontsize=9)
        figure.colorbar(image, ax=axes, fraction=0.04)
        figure.savefig(path, dpi=DPI)
    finally:
        pyplot.close(figure)
    return path


def plot_translations(translator, sentences: Sequence[str], paths: Sequence) -> list[pathlib.Path]:
    """Writes `paths[i]`: the attention heatmap of `sentences[i]`'s best translation by
    `translator` (any `TextTranslator` with attention output), in batches of its batch size."""
    written = []
    for start in range(0, len(sentences), translator.batch_size):
        batch = list(sentences[start : start + translator.batch_size])
        outputs = translator.alignment_batch(batch)
        for offset, sentence in enumerate(batch):
            attention, source, target = trim(
                outputs["attention"][offset],
                outputs["source_tokens"][offset],
                outputs["target_tokens"][offset],
            )
            path = paths[start + offset]
            written.append(plot_attention(attention, source, target, path, sentence))
    return written
