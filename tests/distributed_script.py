"""Subprocess side of tests/test_distribute.py: what needs a fresh process (logical devices,
TF_CONFIG) or a process that dies (SIGKILL).

    python -m tests.distributed_script train RUN_DIR WEIGHTS.npz [OVERRIDE ...]
    python -m tests.distributed_script kill-at-step EPOCH STEP RUN_DIR [OVERRIDE ...]
    python -m tests.distributed_script kill-in-save RUN_DIR [OVERRIDE ...]

Overrides are `section.key=value` config settings (the test passes its tiny config). With
`KERAS_NMT_TEST_CPUS=N` in the environment the CPU is first split into N logical devices
(what `train.strategy=mirrored` then runs on).
"""

from __future__ import annotations

import os
import pathlib
import signal
import sys


def _config(overrides):
    from keras_nmt.config import Config

    return Config.from_dict({}, overrides)


def train_and_dump(run_dir: str, weights: str, overrides) -> None:
    """`training.train` (strategy from the overrides, TF_CONFIG from the environment), then
    this process's final model variables to `weights` (.npz)."""
    import keras
    import numpy as np

    from keras_nmt.training import train as training

    class Dump(keras.callbacks.Callback):
        def on_train_end(self, logs=None):
            np.savez(weights, *[variable.numpy() for variable in self.model.variables])

    make = training.callbacks
    training.callbacks = lambda *args, **kwargs: [*make(*args, **kwargs), Dump()]
    training.train(_config(overrides), run_dir, log=print)


def kill_at_step(epoch: int, step: int, run_dir: str, overrides) -> None:
    """`training.train`, SIGKILLed by itself at the end of step `step` of epoch `epoch`."""
    import keras

    from keras_nmt.training import train as training

    class Kill(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.epoch = -1

        def on_epoch_begin(self, current, logs=None):
            self.epoch = current

        def on_train_batch_end(self, batch, logs=None):
            if self.epoch == epoch and batch == step:
                os.kill(os.getpid(), signal.SIGKILL)

    make = training.callbacks
    training.callbacks = lambda *args, **kwargs: [*make(*args, **kwargs), Kill()]
    training.train(_config(overrides), run_dir, log=print)


def kill_in_save(run_dir: str, overrides) -> None:
    """`training.train`, SIGKILLed by itself inside its second checkpoint save: after the
    files are written, before the rename that commits them."""
    from keras_nmt.training import checkpoint
    from keras_nmt.training import train as training

    rename = os.rename
    saves = []

    def rename_or_die(source, target):
        if pathlib.Path(source).name.startswith(".tmp-"):
            saves.append(target)
            if len(saves) == 2:
                os.kill(os.getpid(), signal.SIGKILL)
        rename(source, target)

    checkpoint.os.rename = rename_or_die
    training.train(_config(overrides), run_dir, log=print)


if __name__ == "__main__":
    if os.environ.get("KERAS_NMT_TEST_CPUS"):
        import tensorflow as tf

        cpu = tf.config.list_physical_devices("CPU")[0]
        count = int(os.environ["KERAS_NMT_TEST_CPUS"])
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * count
        )
    command, *arguments = sys.argv[1:]
    if command == "train":
        train_and_dump(arguments[0], arguments[1], arguments[2:])
    elif command == "kill-at-step":
        kill_at_step(int(arguments[0]), int(arguments[1]), arguments[2], arguments[3:])
    elif command == "kill-in-save":
        kill_in_save(arguments[0], arguments[1:])
    else:
        raise SystemExit(f"unknown command {command!r}")
