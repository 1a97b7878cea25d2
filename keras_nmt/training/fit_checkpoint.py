"""`FitCheckpoint`: the training state of a `model.fit` run, saved from a callback so that a
killed run resumes at the same optimizer step with the same data.

Keras 3's `BackupAndRestore` restores the epoch only; `fit` itself knows no step within an
epoch. This callback keeps the position that `fit` lacks (`epoch`, `step` within it, the
epoch's running sums, whether a callback `stopped` training) in variables checkpointed with
the model's and the optimizer's (a `checkpoint.TrainingPosition`), through
`checkpoint.Checkpointer` (atomic).

The running sums are the model's `keras.metrics.Sum` metrics (`Seq2Seq.metrics`, the fields
of `TokenSums` in order): `fit` resets them at every epoch's start, and `on_epoch_begin` of
an epoch resumed mid-way puts the checkpointed sums back, so that its logs count the steps
trained before the kill too.

It also keeps the step budget (`train.max_steps`): training stops once the optimizer has
taken `max_steps` steps, all runs in the run directory together, and the position is saved
there, mid-epoch or not, without marking the run stopped (a larger budget goes on from it).
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from keras_nmt.models.losses import TokenSums
from keras_nmt.training.checkpoint import Checkpointer, TrainingPosition


class FitCheckpoint(keras.callbacks.Callback):
    """Saves the training state every `save_every` optimizer steps and at every epoch end.

    Put it last among a `fit`'s callbacks: it records `stopped` from the decisions of those
    before it (early stopping, the time budget), and a step's save follows the other
    callbacks' work on that step.

    Args:
        model: a compiled `Seq2Seq`, built, with its optimizer built (`restore` loads into
            their variables), in its strategy's scope.
        directory: where `Checkpointer` writes `ckpt-<optimizer step>/`.
        steps_per_epoch: optimizer steps in a whole epoch.
        save_every: optimizer steps between saves inside an epoch.
        write: False in the non-chief workers (see `Checkpointer`).
        max_steps: the step budget (optimizer steps in all), or None.
    """

    def __init__(
        self,
        model,
        directory,
        steps_per_epoch: int,
        save_every: int,
        write=True,
        max_steps: int | None = None,
    ):
        super().__init__()
        if steps_per_epoch < 1 or save_every < 1:
            raise ValueError(
                "steps_per_epoch and save_every: expected >= 1, received "
                f"{steps_per_epoch} and {save_every}"
            )
        self.trained = model
        self.steps_per_epoch = steps_per_epoch
        self.save_every = save_every
        self.position = TrainingPosition()
        self.checkpointer = Checkpointer(
            directory, self.position.checkpoint(model, model.optimizer), write=write
        )
        self.max_steps = max_steps
        self._step = 0  # the step within the epoch, counted here rather than read back
        self._iterations = 0  # optimizer steps taken

    def restore(self) -> int | None:
        """Loads the latest checkpoint; returns its optimizer step (None if there is none)."""
        return self.checkpointer.restore()

    def on_train_begin(self, logs=None):
        self._step = int(self.position.step.numpy())
        self._iterations = int(self.trained.optimizer.iterations.numpy())

    def on_epoch_begin(self, epoch, logs=None):
        if self._step:
            self._set_sums(TokenSums(*self.position.sums.numpy()))

    def budget_spent(self) -> bool:
        """Whether the optimizer has taken `max_steps` steps (restored ones included)."""
        iterations = int(self.trained.optimizer.iterations.numpy())
        return self.max_steps is not None and iterations >= self.max_steps

    def on_train_batch_end(self, batch, logs=None):
        self._step += 1
        self._iterations += 1
        if self.max_steps is not None and self._iterations >= self.max_steps:
            self.trained.stop_training = True
        if self._step < self.steps_per_epoch and self._iterations % self.save_every == 0:
            self._save_within_epoch()

    def on_epoch_end(self, epoch, logs=None):
        if self._step < self.steps_per_epoch:
            if self.budget_spent():  # the budget ends the run here: saved to go on from
                self._save_within_epoch()
            return  # otherwise (TerminateOnNaN) the epoch is not done and nothing is saved
        self._step = 0
        self.position.epoch.assign(epoch + 1)
        self.position.step.assign(0)
        self.position.sums.assign(tf.zeros_like(self.position.sums))
        self.position.stopped.assign(bool(self.trained.stop_training) and not self.budget_spent())
        self.checkpointer.save(self._iterations)

    def _save_within_epoch(self) -> None:
        self.position.step.assign(self._step)
        self.position.sums.assign(np.array(self._get_sums()))
        self.checkpointer.save(self._iterations)

    def token_count(self) -> float:
        """The epoch's running non-PAD target token count (the `target_tokens` sum)."""
        return self._get_sums().tokens

    # The sums live in sync-on-read variables: each replica holds the global batches' sums
    # (`Seq2Seq.train_step`), so they are read from, and written to, each replica's copy.

    def _components(self, metric):
        (variable,) = metric.variables
        return self.trained.distribute_strategy.experimental_local_results(variable.value)

    def _get_sums(self) -> TokenSums:
        """The running sums, as Python floats."""
        metrics = self.trained.metrics
        return TokenSums(*(float(self._components(metric)[0].numpy()) for metric in metrics))

    def _set_sums(self, sums: TokenSums) -> None:
        for metric, value in zip(self.trained.metrics, sums):
            for component in self._components(metric):
                component.assign(value)
