"""Checkpoint averaging: a model whose weights are the mean of the last epochs' weights.

Averaging the parameters of the last few checkpoints of a run (as OpenNMT-tf's
`average_checkpoints` and Marian's `--exponential-smoothing` do in their ways) usually scores
higher than any one of them: late epochs wander around a minimum, and their mean is nearer.

With `train.average_last_epochs: N`, training keeps the model's variables at the end of each
of the last N epochs in `<run>/epochs/ckpt-<epoch>/` (written atomically by
`checkpoint.Checkpointer`), and when training ends writes `<run>/averaged/`: a run directory
(config, SentencePiece models, `model.weights.h5`) that `translate`, `evaluate` and `export`
take like any other. `keras-nmt average` does the same for a run that was stopped by hand.

With `train.average_best_epochs: N` instead, the N epochs kept are those with the best
`train.best_metric` so far (`best_epochs`): an early-stopped run's last epochs are past its
best, and a mean of the best ones may be nearer the minimum. Then training compares the
averaged weights with the best epoch's on the validation set and copies the better of the
two to `<run>/final/` (`write_run`), the run directory to ship.
"""

from __future__ import annotations

import math
import pathlib
import shutil
import tempfile
from collections.abc import Callable

import numpy as np
import tensorflow as tf

from keras_nmt.errors import UserError
from keras_nmt.inference.translator import Translator
from keras_nmt.run_dir import RunDir
from keras_nmt.training.checkpoint import Checkpointer


def epoch_checkpointer(run: RunDir, model, keep: int | None, write: bool = True) -> Checkpointer:
    """The checkpoints of `model`'s variables at epoch ends, `run.epochs/ckpt-<epoch>`: the
    last `keep`, or all (None) until their owner removes some."""
    checkpoint = tf.train.Checkpoint(model=[variable.value for variable in model.variables])
    return Checkpointer(run.epochs, checkpoint, keep=keep, write=write)


def best_epochs(scores: dict[int, float], count: int, mode: str) -> list[int]:
    """The `count` epochs with the best `scores` (epoch -> value; `mode` "max" or "min"),
    ascending. NaN scores (an epoch without the metric) are never among them; of equal
    scores, the later epoch wins."""
    sign = -1.0 if mode == "max" else 1.0
    ranked = sorted(
        (epoch for epoch, value in scores.items() if not math.isnan(value)),
        key=lambda epoch: (sign * scores[epoch], -epoch),
    )
    return sorted(ranked[:count])


def average_epochs(model, checkpointer: Checkpointer, last: int) -> list[int]:
    """Sets `model`'s floating-point variables to their mean over the last `last` epoch
    checkpoints (summed in float64); other variables (dropout RNG states) keep the values of
    the latest one. Returns the averaged epochs.

    Raises:
        UserError: no epoch checkpoint.
    """
    epochs = checkpointer.steps()[-last:]
    if not epochs:
        raise UserError(
            f"no epoch weights in {checkpointer.directory} (set train.average_last_epochs or "
            "train.average_best_epochs before training to keep them)"
        )
    variables = [v for v in model.variables if np.dtype(v.dtype).kind == "f"]
    sums = [np.zeros(v.shape, np.float64) for v in variables]
    for epoch in epochs:
        checkpointer.read(epoch)
        for total, variable in zip(sums, variables):
            total += np.asarray(variable.numpy(), np.float64)
    for total, variable in zip(sums, variables):
        variable.assign((total / len(epochs)).astype(np.dtype(variable.dtype)))
    return epochs


def average_run(
    run_dir: str | pathlib.Path,
    output_dir: str | pathlib.Path | None = None,
    last: int | None = None,
) -> tuple[pathlib.Path, list[int]]:
    """Writes the run directory `output_dir` (default `<run_dir>/averaged`) whose weights
    are the mean of `run_dir`'s last `last` epoch checkpoints (default: all kept), with
    `write_run`.

    Returns:
        The output directory and the averaged epochs (1-based).
    """
    run = RunDir(run_dir)
    translator = Translator.load_run_dir(run.path)
    checkpointer = epoch_checkpointer(run, translator.model, keep=None, write=False)
    if last is not None and last < 1:
        raise UserError(f"--last: expected at least 1 epoch, got {last}")
    epochs = average_epochs(translator.model, checkpointer, last or len(checkpointer.steps()))
    output = output_dir if output_dir is not None else run.averaged
    return write_run(run, output, translator.model.save_weights), epochs


def write_run(
    run: RunDir, output_dir: str | pathlib.Path, save_weights: Callable[[pathlib.Path], None]
) -> pathlib.Path:
    """Makes `output_dir` a run directory of `run`'s model: copies of its config and
    SentencePiece models, and the `model.weights.h5` that `save_weights(path)` writes (to a
    temporary file first, renamed into place). Returns `output_dir` as a path."""
    output = RunDir(output_dir)
    output.path.mkdir(parents=True, exist_ok=True)
    for name in ("config", "source_model", "target_model"):
        shutil.copyfile(getattr(run, name), getattr(output, name))
    with tempfile.TemporaryDirectory(dir=output.path, prefix=".tmp-") as scratch:
        temporary = pathlib.Path(scratch) / output.weights.name
        save_weights(temporary)
        temporary.replace(output.weights)
    return output.path
