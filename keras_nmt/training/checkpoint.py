"""Atomic training-state checkpoints: what a killed run resumes from.

`Checkpointer(directory, checkpoint)` saves a `tf.train.Checkpoint` (the model's variables,
dropout RNG states included, the optimizer's, and the loop's position) as
`directory/ckpt-<step>/`:

1. everything is written into a fresh hidden directory `directory/.tmp-*` and fsynced;
2. that directory is renamed to `ckpt-<step>` (a rename within one file system is atomic);
3. older checkpoints beyond `keep` are deleted.

A kill at any moment therefore leaves either the new checkpoint complete or no trace of it
(a `.tmp-*` directory, removed by the next save or restore); the previous checkpoint is only
deleted after the new one is in place. `restore` loads the highest `ckpt-<step>`.
"""

from __future__ import annotations

import os
import pathlib
import re
import shutil
import tempfile

import tensorflow as tf

from keras_nmt.models.losses import TokenSums

_NAME = re.compile(r"^ckpt-(\d+)$")
_PREFIX = "state"  # the tf.train.Checkpoint file prefix inside a checkpoint directory


class Checkpointer:
    """Saves and restores `checkpoint` in `directory` (see the module docstring).

    Args:
        directory: where the checkpoints go (created on the first save).
        checkpoint: the `tf.train.Checkpoint` to write and read.
        keep: how many checkpoints to keep (at least 1), the latest ones; None keeps all
            (the caller removes what it does not want, `remove`).
        write: False for the non-chief workers of a multi-worker run: they take part in a
            save (as TensorFlow requires of every worker) but write to a temporary directory
            that is deleted at once, leaving `directory` to the chief.
    """

    def __init__(
        self,
        directory: str | pathlib.Path,
        checkpoint: tf.train.Checkpoint,
        keep: int | None = 2,
        write: bool = True,
    ):
        if keep is not None and keep < 1:
            raise ValueError(f"keep: expected at least 1 checkpoint, received {keep}")
        self.directory = pathlib.Path(directory)
        self.checkpoint = checkpoint
        self.keep = keep
        self.write = write

    def steps(self) -> list[int]:
        """The steps of the complete checkpoints in `directory`, ascending."""
        if not self.directory.is_dir():
            return []
        found = (_NAME.match(path.name) for path in self.directory.iterdir())
        return sorted(int(match.group(1)) for match in found if match)

    def path(self, step: int) -> pathlib.Path:
        return self.directory / f"ckpt-{step:09d}"

    def save(self, step: int) -> pathlib.Path | None:
        """Writes the checkpoint of `step`; returns its directory (None when not writing)."""
        if not self.write:
            scratch = tempfile.mkdtemp(prefix="keras-nmt-worker-")
            try:
                self.checkpoint.write(os.path.join(scratch, _PREFIX))
            finally:
                shutil.rmtree(scratch, ignore_errors=True)
            return None
        self.directory.mkdir(parents=True, exist_ok=True)
        self._remove_partial()
        temporary = pathlib.Path(tempfile.mkdtemp(prefix=".tmp-", dir=self.directory))
        try:
            self.checkpoint.write(str(temporary / _PREFIX))
            _fsync_tree(temporary)
            final = self.path(step)
            if final.exists():  # the same step saved again (e.g. a step and an epoch end)
                shutil.rmtree(final)
            os.rename(temporary, final)
            _fsync_directory(self.directory)
        except BaseException:
            shutil.rmtree(temporary, ignore_errors=True)
            raise
        if self.keep is not None:
            for old in self.steps()[: -self.keep]:
                self.remove(old)
        return final

    def remove(self, step: int) -> None:
        """Deletes the checkpoint of `step`, if there is one (and if writing)."""
        if self.write:
            shutil.rmtree(self.path(step), ignore_errors=True)

    def restore(self) -> int | None:
        """Loads the latest checkpoint into `checkpoint`; returns its step, or None if there
        is none. Every saved value must find its variable (a changed model fails loudly)."""
        if self.write:
            self._remove_partial()
        steps = self.steps()
        if not steps:
            return None
        self.read(steps[-1])
        return steps[-1]

    def read(self, step: int) -> None:
        """Loads the checkpoint of `step` into `checkpoint` (every saved value must find its
        variable)."""
        status = self.checkpoint.read(str(self.path(step) / _PREFIX))
        status.assert_existing_objects_matched()

    def _remove_partial(self) -> None:
        if self.directory.is_dir():
            for path in self.directory.glob(".tmp-*"):
                shutil.rmtree(path, ignore_errors=True)


class TrainingPosition:
    """Where a training run is, saved with its model and optimizer so that a killed run
    resumes at the same optimizer step: `epoch` (epochs finished), `step` within the current
    one, the epoch's running `sums` (a float64 vector of the `TokenSums` fields in order: loss,
    NLL, correct predictions, non-PAD target tokens) and whether a callback `stopped`
    training (`fit_checkpoint.FitCheckpoint` keeps it). Create it in the strategy's scope."""

    def __init__(self):
        self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
        self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        sums = tf.zeros([len(TokenSums._fields)], tf.float64)
        self.sums = tf.Variable(sums, trainable=False, name="sums")
        self.stopped = tf.Variable(False, trainable=False, name="stopped")

    def checkpoint(self, model, optimizer) -> tf.train.Checkpoint:
        """A `tf.train.Checkpoint` of `model`, `optimizer` (built) and this position.

        Explicit variable lists: a `tf.train.Checkpoint(model=model)` of a Keras 3 model
        reaches only some of its variables (for a small Seq2Seq, 7 of 25: neither the RNN
        cells' weights nor the dropout RNG states). `model.variables` has them all, in a fixed
        order for a given architecture."""
        return tf.train.Checkpoint(
            model=[variable.value for variable in model.variables],
            optimizer=[variable.value for variable in optimizer.variables],
            epoch=self.epoch,
            step=self.step,
            sums=self.sums,
            stopped=self.stopped,
        )


def _fsync_tree(directory: pathlib.Path) -> None:
    for path in directory.iterdir():
        with open(path, "rb") as handle:
            os.fsync(handle.fileno())
    _fsync_directory(directory)


def _fsync_directory(directory: pathlib.Path) -> None:
    handle = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)
