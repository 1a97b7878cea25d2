"""Attention pictures: one heatmap per sentence, source subwords across, target subwords down.

Each picture is a matplotlib `Figure` of its own on the Agg canvas (no display and no pyplot
state needed). Its size follows from what it holds: every heatmap cell is `CELL_INCHES` square,
and matplotlib's constrained layout measures the tick labels, axis labels, colorbar and title in
the font actually used and makes room for them around the heatmap, so long pieces such as
`▁einundzwanzig` and the rotated source labels lie whole inside the picture.
"""

from __future__ import annotations

import pathlib
import textwrap
from collections.abc import Sequence

import numpy as np

DPI = 100
CELL_INCHES = 0.35  # each source column and target row
MIN_HEATMAP_INCHES = 1.5  # the heatmap's least width and height, so one token stays legible
TITLE_FONT_SIZE = 9
TITLE_PAD_INCHES = 0.1  # kept free beside each end of the longest title line
# A generous first guess at the room one label character needs (wide glyphs included): the
# first layout then shrinks the figure to what the labels measure, rather than collapsing.
CHARACTER_INCHES = 0.15


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


def attention_figure(
    attention: np.ndarray,
    source_tokens: Sequence[str],
    target_tokens: Sequence[str],
    title: str | None = None,
):
    """A heatmap of `attention` `(T, S)` (row t: target token t's weights over the source
    tokens) with the tokens as tick labels, as a laid-out `matplotlib.figure.Figure`.

    The heatmap is `CELL_INCHES` per token each way (at least `MIN_HEATMAP_INCHES`); the
    figure is as large as that plus the measured labels, colorbar and title need, so every
    label lies inside it. The title is wrapped into lines no wider than the figure.
    """
    # matplotlib is imported here, when a picture is drawn, not with the module: it is slow to
    # import (`python -X importtime -c "import matplotlib.figure"`), and the CLI imports this
    # module for every command.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    heatmap = (
        max(MIN_HEATMAP_INCHES, CELL_INCHES * len(source_tokens)),
        max(MIN_HEATMAP_INCHES, CELL_INCHES * len(target_tokens)),
    )
    longest = CHARACTER_INCHES * max(map(len, [*source_tokens, *target_tokens, ""]))
    figure = Figure(
        figsize=(heatmap[0] + longest + 2.0, heatmap[1] + longest + 2.0),
        dpi=DPI,
        layout="constrained",
    )
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    image = axes.imshow(attention, cmap="Greys", vmin=0.0, vmax=1.0, aspect="auto")
    # Pieces and sentences are plain text: a "$" in them is no TeX math.
    axes.set_xticks(range(len(source_tokens)), labels=source_tokens, rotation=90, parse_math=False)
    axes.set_yticks(range(len(target_tokens)), labels=target_tokens, parse_math=False)
    axes.set_xlabel("source")
    axes.set_ylabel("target")
    figure.colorbar(image, ax=axes, fraction=0.04)
    heading = figure.suptitle(title, fontsize=TITLE_FONT_SIZE, parse_math=False) if title else None
    _fit_heatmap(figure, axes, heatmap)
    if heading is not None and _wrap_title(figure, heading):
        _fit_heatmap(figure, axes, heatmap)  # the title's extra lines take height
    return figure


def _fit_heatmap(figure, axes, heatmap: tuple[float, float]) -> None:
    """Resizes `figure` until its constrained layout gives `axes` `heatmap` (width, height)
    inches. The layout's margins hold the measured labels whatever the figure's size, so the
    figure changes by what the heatmap lacks or has too much; a few rounds settle the colorbar,
    whose width follows the heatmap's."""
    for _ in range(4):
        figure.draw_without_rendering()  # runs the layout
        box = axes.get_position()
        width, height = figure.get_size_inches()
        missing = (heatmap[0] - box.width * width, heatmap[1] - box.height * height)
        if max(map(abs, missing)) < 0.01:
            return
        figure.set_size_inches(width + missing[0], height + missing[1])


def _wrap_title(figure, text) -> bool:
    """Breaks `text`, the figure's title (centred on the figure), at spaces into lines that
    each fit the figure's width, and says whether it did: the title is the source sentence,
    which may be longer than the heatmap is wide."""
    title = text.get_text()
    renderer = figure.canvas.get_renderer()
    room = figure.bbox.width - 2 * TITLE_PAD_INCHES * figure.dpi  # pixels
    columns = len(title)
    while columns > 1 and (measured := text.get_window_extent(renderer).width) > room:
        columns = max(1, min(columns - 1, int(columns * room / measured)))
        text.set_text(textwrap.fill(title, columns, break_on_hyphens=False))
    return text.get_text() != title


def plot_attention(
    attention: np.ndarray,
    source_tokens: Sequence[str],
    target_tokens: Sequence[str],
    path: str | pathlib.Path,
    title: str | None = None,
) -> pathlib.Path:
    """Writes `attention_figure(attention, source_tokens, target_tokens, title)` as a PNG to
    `path`; returns its path."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    attention_figure(attention, source_tokens, target_tokens, title).savefig(path, dpi=DPI)
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
