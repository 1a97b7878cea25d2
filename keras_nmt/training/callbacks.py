"""Training callbacks of our own (Keras's built-in ones are set up in `training.train`),
called by `model.fit`."""

from __future__ import annotations

import statistics
import sys
import time

import keras
import numpy as np
from tqdm import tqdm

from keras_nmt.evaluation.bleu import score


class TokenThroughput(keras.callbacks.Callback):
    """Measures non-PAD target tokens per second, timing each training step.

    Each step is timed from `on_train_batch_begin` to `on_train_batch_end`, so that what runs
    between steps and epochs (validation, saves, the next input pipeline's start) is left out
    of the rate; the tokens of the step are the difference of a running token count. At the end of
    each epoch `logs["target_tokens_per_second"]` gets the median over the epoch's steps after
    `warmup` steps (all steps if there are fewer).

    Args:
        token_count: a callable returning the epoch's running non-PAD target token count.
        warmup: steps per epoch to leave out of the median (tracing, caches).
    """

    def __init__(self, token_count, warmup: int = 5):
        super().__init__()
        self.token_count = token_count
        self.warmup = warmup
        self.rates: list[float] = []
        self._start = 0.0
        self._tokens = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self.rates = []
        self._tokens = float(self.token_count())  # not 0 when resuming mid-epoch

    def on_train_batch_begin(self, batch, logs=None):
        self._start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        elapsed = time.perf_counter() - self._start
        total = float(self.token_count())
        step_tokens, self._tokens = total - self._tokens, total
        if elapsed > 0:
            self.rates.append(step_tokens / elapsed)

    def median(self) -> float:
        rates = self.rates[self.warmup :] or self.rates
        return statistics.median(rates) if rates else 0.0

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["target_tokens_per_second"] = self.median()


class TrainingProgress(keras.callbacks.Callback):
    """A progress bar inside each epoch (tqdm): steps done of the epoch's total, the epoch's
    loss so far, target tokens per second since the bar started, and tqdm's ETA. It is
    redrawn at most once every `min_interval` seconds, and the loss and token count are read
    only then, so a step costs one counter update. The bar is cleared at the epoch's end,
    where `EpochLogger` writes the epoch's line. A run resumed mid-epoch starts its bar at the
    step it resumes from.

    Args:
        token_count: a callable returning the epoch's running non-PAD target token count.
        file: the terminal to draw on (default: stdout).
        min_interval: seconds between redraws.
    """

    def __init__(self, token_count, file=None, min_interval: float = 0.25):
        super().__init__()
        self.token_count = token_count
        self.file = file
        self.min_interval = min_interval
        self._bar = None
        self._epoch = 0
        self._started = self._tokens = self._drawn = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self._close()
        self._epoch = epoch

    def on_train_batch_begin(self, batch, logs=None):
        if self._bar is not None:
            return
        epochs = self.params.get("epochs")
        self._bar = tqdm(
            total=self.params.get("steps"),
            initial=batch,
            desc=f"epoch {self._epoch + 1}/{epochs}" if epochs else f"epoch {self._epoch + 1}",
            unit="step",
            file=self.file if self.file is not None else sys.stdout,
            leave=False,
            dynamic_ncols=True,
            mininterval=self.min_interval,
        )
        self._started = self._drawn = time.perf_counter()
        self._tokens = float(self.token_count())

    def on_train_batch_end(self, batch, logs=None):
        if self._bar is None:
            return
        now = time.perf_counter()
        if now - self._drawn >= self.min_interval:
            self._drawn = now
            rate = (float(self.token_count()) - self._tokens) / max(now - self._started, 1e-9)
            loss = (logs or {}).get("loss")
            text = f"{rate:,.0f} tok/s" if loss is None else f"loss {loss:.4f}, {rate:,.0f} tok/s"
            self._bar.set_postfix_str(text, refresh=False)
        self._bar.update(batch + 1 - self._bar.n)

    def on_epoch_end(self, epoch, logs=None):
        self._close()

    def on_train_end(self, logs=None):
        self._close()

    def _close(self):
        if self._bar is not None:
            self._bar.close()
            self._bar = None


class FirstStepTime(keras.callbacks.Callback):
    """Logs, once, how long after `started` (`time.time()` at the start of the `train` call)
    the run's first training step ended: reading and checking the corpora, SentencePiece
    training, the first tokenizing pass, building the model and tracing the step."""

    def __init__(self, started: float, log):
        super().__init__()
        self.started = started
        self.log = log
        self._done = False

    def on_train_batch_end(self, batch, logs=None):
        if not self._done:
            self._done = True
            self.log(f"first training step done {time.time() - self.started:.1f} s after start")


class EpochLogger(keras.callbacks.Callback):
    """One line per finished epoch, through `log`: the epoch's wall time and its logs. `fit`
    runs with `verbose=0`, so this line (and `TrainingProgress` inside an epoch) takes the
    place of Keras's progress bar, and goes wherever the caller's `log` sends it.

    Args:
        log: a callable taking one string.
        epochs: the total number of epochs, for the `epoch k/N` prefix.
    """

    def __init__(self, log, epochs: int):
        super().__init__()
        self.log = log
        self.epochs = epochs
        self._start = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        values = ", ".join(
            f"{name} {value:.0f}" if name.endswith("per_second") else f"{name} {value:.4f}"
            for name, value in (logs or {}).items()
        )
        seconds = time.perf_counter() - self._start
        self.log(f"epoch {epoch + 1}/{self.epochs} ({seconds:.0f} s): {values}")


class ValidationBLEU(keras.callbacks.Callback):
    """Adds `val_bleu` to the epoch logs every `every` epochs: greedy sacreBLEU (cased) of
    the model being trained on `sources` against `references`.

    Args:
        translator: a `Translator` sharing the trained model's variables (built once, so
            its decoding graph is traced once); greedy decoding is used unless `greedy` is
            False (then the translator's own, one hypothesis a sentence).
        sources, references: the validation subset.
        every: epochs between evaluations.
        greedy: see `translator`.

    Put it before the callbacks that read `val_bleu` (checkpoint, early stopping, CSV,
    TensorBoard): Keras passes them the same logs in list order. Epochs in between log NaN
    (CSVLogger keeps the columns of the first epoch): no checkpoint is saved on them, and
    early stopping counts them as epochs without improvement.
    """

    def __init__(
        self,
        translator,
        sources: list[str],
        references: list[str],
        every: int = 1,
        greedy: bool = True,
    ):
        super().__init__()
        beam_size = 1 if greedy else None  # None: the translator's
        self.translator = translator.with_decoding(beam_size=beam_size, n_best=1)
        self.sources = sources
        self.references = references
        self.every = every

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        if (epoch + 1) % self.every:
            logs["val_bleu"] = float("nan")
            return
        logs["val_bleu"] = self.bleu()

    def bleu(self) -> float:
        """sacreBLEU of the translator's model on the validation subset, with its current
        weights."""
        return score(self.translator.translate(self.sources), self.references).bleu


class EpochWeights(keras.callbacks.Callback):
    """Saves the model's variables at every epoch end through `checkpointer`
    (`averaging.epoch_checkpointer`: atomic, the last few kept), named by the 1-based epoch.

    Given `keep`, a callable `(epoch, logs) -> epochs` (1-based), removes after each save
    the kept checkpoints of other epochs than those it returns (the best ones, say).

    Runs in every worker of a multi-worker run (TensorFlow asks all of them to take part in a
    save); only the chief's checkpointer writes (and removes).
    """

    def __init__(self, checkpointer, keep=None):
        super().__init__()
        self.checkpointer = checkpointer
        self.keep = keep

    def on_epoch_end(self, epoch, logs=None):
        self.checkpointer.save(epoch + 1)
        if self.keep is not None and self.checkpointer.write:
            wanted = set(self.keep(epoch + 1, logs or {}))
            for saved in self.checkpointer.steps():
                if saved not in wanted:
                    self.checkpointer.remove(saved)


class TimeBudget(keras.callbacks.Callback):
    """Adds `training_minutes` to the epoch logs: the wall time of the run so far, previous
    runs in the same run directory (resumed) included. Given `max_minutes`, stops training
    after the epoch at whose end one more epoch as long as the longest so far would end past
    the budget. An epoch's length runs from the end of the one before (from `started` for the
    first of a run), so it counts what happens between epochs too (validation, saves, the
    next input pipeline's start), which differs from epoch to epoch: hence the longest, not
    the last.

    Args:
        started: `time.time()` at the start of this run's `train` call.
        previous_minutes: the minutes of the previous runs in the same run directory (the
            last `training_minutes` of its history; the unfinished epoch of a killed run is
            lost).
        max_minutes: the budget, or None.
        agree: maps this worker's decision to stop (a bool) to the decision of all workers
            (whether any stops), so that the workers of a multi-worker run stop together.
        log: a callable taking one string.
    """

    def __init__(self, started, previous_minutes, max_minutes, agree, log):
        super().__init__()
        self.started = started
        self.previous_minutes = previous_minutes
        self.max_minutes = max_minutes
        self.agree = agree
        self.log = log
        self._previous_end = started
        self._longest = 0.0

    def on_epoch_end(self, epoch, logs=None):
        now = time.time()
        minutes = self.previous_minutes + (now - self.started) / 60
        if logs is not None:
            logs["training_minutes"] = minutes
        if self.max_minutes is None:
            return
        self._longest = max(self._longest, (now - self._previous_end) / 60)
        self._previous_end = now
        if self.agree(minutes + self._longest > self.max_minutes):
            self.model.stop_training = True
            self.log(
                f"time budget: {minutes:.1f} of train.max_minutes = {self.max_minutes:g} "
                f"minutes spent, and an epoch takes up to {self._longest:.1f}; stopping"
            )


class _ReplaysHistory:
    """Mixin for a Keras callback that counts epochs (`on_epoch_end`): at the start of each
    `fit` it counts on from where a resumed run left off, by replaying the logs of the
    run's finished epochs (`history()`, the rows of history.csv) through `_replay`."""

    def __init__(self, history, **kwargs):
        super().__init__(**kwargs)
        self.history = history

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        for row in self.history():
            self._replay(int(row["epoch"]), dict(row))

    def _replay(self, epoch: int, logs: dict) -> None:
        super().on_epoch_end(epoch, logs)


class ResumedEarlyStopping(_ReplaysHistory, keras.callbacks.EarlyStopping):
    """`EarlyStopping` that a run killed and resumed stops after the same epoch as one that
    was not (`_ReplaysHistory`). It keeps no weights (`restore_best_weights` is off)."""


class ResumedReduceLROnPlateau(_ReplaysHistory, keras.callbacks.ReduceLROnPlateau):
    """`ReduceLROnPlateau` that a run killed and resumed halves its rate after the same
    epochs as one that was not (`_ReplaysHistory`): a replayed reduction is decided on the
    rate that epoch logged and not applied (the restored optimizer holds the reduced rate)."""

    _replayed_rate: float | None = None

    def _replay(self, epoch: int, logs: dict) -> None:
        self._replayed_rate = logs.get("learning_rate", float("inf"))
        try:
            super()._replay(epoch, logs)
        finally:
            self._replayed_rate = None

    def _reduce_optimizer_lr(self, optimizer, epoch, name=""):
        if self._replayed_rate is None:
            return super()._reduce_optimizer_lr(optimizer, epoch, name)
        return self._replayed_rate > float(np.float32(self.min_lr))
