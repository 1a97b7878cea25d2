"""`quickstart(run_dir)`: the main job on the embedded corpus, on a machine with no internet.

Writes the corpus splits into `run_dir/data`, trains with `keras_nmt/quickstart/config.yaml`,
scores the test split with sacreBLEU, translates a few examples, and exports the model as a
SavedModel for TF Serving (`export_dir/quickstart/VERSION`, skipped when `export_dir` is None).
"""

from __future__ import annotations

import importlib.resources
import pathlib
import time
from collections.abc import Callable

import yaml

from keras_nmt.config import Config
from keras_nmt.evaluation.attention_plot import plot_translations
from keras_nmt.evaluation.bleu import Scores, evaluate
from keras_nmt.exporting.saved_model import export_saved_model
from keras_nmt.inference.loading import load
from keras_nmt.quickstart import corpus as default_corpus
from keras_nmt.training.train import log_to_stdout, train

EXAMPLES = (
    "Yesterday he bought twenty-one apples.",
    "The book costs three hundred and forty-five euros.",
    "I think that my sister found sixty-seven cakes.",
)


def quickstart_config(run_dir: str | pathlib.Path, overrides=()) -> Config:
    raw = yaml.safe_load(
        importlib.resources.files("keras_nmt.quickstart").joinpath("config.yaml").read_text("utf-8")
    )
    raw["data"]["dir"] = str(pathlib.Path(run_dir) / "data")
    return Config.from_dict(raw, overrides)


def quickstart(
    run_dir: str | pathlib.Path = "runs/quickstart",
    overrides=(),
    log: Callable[[str], None] = log_to_stdout,
    export_dir: str | pathlib.Path | None = "export",
) -> Scores:
    """Runs the whole path and returns the test scores (see the module docstring)."""
    start = time.perf_counter()
    run_dir = pathlib.Path(run_dir)
    config = quickstart_config(run_dir, overrides)
    paths = default_corpus.write_corpus(config.data.dir)
    log(f"corpus written to {config.data.dir}: " + ", ".join(paths))
    train(config, run_dir, log=log)
    translator = load(run_dir)
    source, reference = paths["test"]
    scores = evaluate(translator, source, reference)
    log(f"test set ({source.name}, {scores.sentences} sentences):")
    log(str(scores))
    for sentence, translation in zip(EXAMPLES, translator.translate(list(EXAMPLES))):
        log(f"  {sentence}\n  -> {translation}")
    [picture] = plot_translations(translator, EXAMPLES[:1], [run_dir / "attention.png"])
    log(f"attention of the first example: {picture}")
    if export_dir is not None:
        exported = export_saved_model(translator, export_dir, "quickstart")
        log(f"SavedModel for TF Serving: {exported} (see docs/serving.md)")
    log(f"quickstart finished in {time.perf_counter() - start:.0f} s; model in {run_dir}")
    return scores
