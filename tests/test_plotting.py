"""Attention pictures: padding trimmed, every label whole inside the picture, and a picture
that grows with the sentences and their longest pieces. Properties only: pixel sizes depend on
the fonts installed."""

from __future__ import annotations

import struct

import numpy as np
from matplotlib.text import Text

from keras_nmt.evaluation.attention_plot import (
    CELL_INCHES,
    DPI,
    attention_figure,
    plot_attention,
    trim,
)
from keras_nmt.inference.loading import load

# "$_$" and "$^$" would be TeX math that fails to parse: pieces and sentences are plain text
LONG_TITLE = " ".join(["Yesterday he bought twenty-one apples and forty-seven pears."] * 6)
LONG_TITLE += " They cost $_$."


def png_size(path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def uniform(source: list[str], target: list[str]) -> np.ndarray:
    return np.full((len(target), len(source)), 1.0 / len(source))


def assert_every_label_inside(figure) -> list[Text]:
    """Draws `figure` and checks that each visible, non-empty text (tick labels, axis labels,
    colorbar ticks, title) lies inside the figure; returns those texts."""
    renderer = figure.canvas.get_renderer()
    figure.draw(renderer)
    texts = [t for t in figure.findobj(Text) if t.get_visible() and t.get_text()]
    bounds = figure.bbox
    for text in texts:
        box = text.get_window_extent(renderer)
        inside = (
            box.x0 >= bounds.x0 - 0.5
            and box.y0 >= bounds.y0 - 0.5
            and box.x1 <= bounds.x1 + 0.5
            and box.y1 <= bounds.y1 + 0.5
        )
        assert inside, (text.get_text(), box, bounds)
    return texts


def test_a_translation_renders_as_a_png_with_padding_trimmed(trained_run, tmp_path):
    translator = load(trained_run)
    outputs = translator.alignment_batch(["one two three", "five six"])
    attention, source, target = trim(
        outputs["attention"][1], outputs["source_tokens"][1], outputs["target_tokens"][1]
    )
    assert source[-1] == "</s>" and target[-1] == "</s>" and "" not in source + target
    assert attention.shape == (len(target), len(source))
    np.testing.assert_allclose(attention.sum(axis=1), 1.0, rtol=1e-5)  # distributions
    path = plot_attention(attention, source, target, tmp_path / "a.png", "five six")
    width, height = png_size(path)
    assert width >= CELL_INCHES * len(source) * DPI and height >= CELL_INCHES * len(target) * DPI
    assert_every_label_inside(attention_figure(attention, source, target, "five six"))


def test_long_pieces_and_a_long_title_lie_whole_inside_the_figure():
    source = ["▁Yesterday", "▁he", "▁bought", "▁twenty", "-", "one", "▁apples", ".", "</s>"]
    target = ["▁Gestern", "▁hat", "▁er", "▁einundzwanzig", "▁Äpfel", "▁gekauft", "$^$", "</s>"]
    figure = attention_figure(uniform(source, target), source, target, LONG_TITLE)
    texts = {text.get_text() for text in assert_every_label_inside(figure)}
    assert set(source + target) <= texts
    title = figure.get_suptitle()
    assert "\n" in title and title.split() == LONG_TITLE.split()  # wrapped, nothing lost
    axes = figure.axes[0]
    box = axes.get_position()
    width, height = figure.get_size_inches()
    np.testing.assert_allclose(
        (box.width * width, box.height * height),
        (CELL_INCHES * len(source), CELL_INCHES * len(target)),
        atol=0.02,
    )  # each heatmap cell keeps its size however long the labels


def test_longer_sentences_and_longer_pieces_give_bigger_pictures(tmp_path):
    short = ["▁a", "▁b", "</s>"]
    longer = [*short[:-1], "▁c", "▁d", "▁e", "</s>"]
    wider = ["▁a", "▁einundzwanzigtausend", "</s>"]

    def size(source, target):
        path = plot_attention(uniform(source, target), source, target, tmp_path / "p.png")
        return png_size(path)

    base = size(short, short)
    assert size(longer, short)[0] > base[0] and size(short, longer)[1] > base[1]
    # a longer target piece widens the picture (its row labels), a longer source piece
    # heightens it (its rotated column labels)
    assert size(short, wider)[0] > base[0] and size(wider, short)[1] > base[1]
