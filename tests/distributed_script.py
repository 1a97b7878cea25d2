"""Subprocess side of tests/test_distribute.py: what needs a fresh process (logical devices,
TF_CONFIG) or a process that dies (SIGKILL).

    python -m tests.distributed_script mirrored OUT.json
    python -m tests.distributed_script train RUN_DIR WEIGHTS.npz [OVERRIDE ...]
    python -m tests.distributed_script kill-at-step EPOCH STEP RUN_DIR [OVERRIDE ...]
    python -m tests.distributed_script kill-in-save RUN_DIR [OVERRIDE ...]
    python -m tests.distributed_script fit-mirrored

Overrides are `section.key=value` config settings (the test passes its tiny config). With
`KERAS_NMT_TEST_CPUS=N` in the environment the CPU is first split into N logical devices
(what `train.strategy=mirrored` then runs on).
"""

from __future__ import annotations

import json
import os
import pathlib
import signal
import sys


def _config(overrides):
    from keras_nmt.config import Config

    return Config.from_dict({}, overrides)


def weight_distances(initial, single, mirrored) -> dict[str, float]:
    """How far one device's weights `single` moved from `initial` (`moved`: the test is not
    vacuous) and how far the mirrored run's ended from them (`difference`): max-abs."""
    import numpy as np

    return {
        "moved": max(float(np.max(np.abs(w - i))) for w, i in zip(single, initial)),
        "difference": max(float(np.max(np.abs(w - m))) for w, m in zip(single, mirrored)),
    }


def mirrored(out: str) -> None:
    """The same 3 optimizer steps on one device (global batch A+B) and mirrored over 2
    logical CPU devices (A to one replica, B to the other, with 6 and 10 target tokens);
    writes both runs' per-step sums and how far their weights ended apart.

    Plain SGD, so that any error in the gradient's scale shows in the weights (Adam's
    steps hardly depend on it), with `global_clipnorm = clip / replicas` as
    `trainer.make_optimizer` sets it; once without clipping, once clipping every step. Then
    FusedAdam (the training optimizer), whose kernel must update each device's copy.
    """
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras
    import numpy as np

    from keras_nmt.distribute import make_strategy
    from keras_nmt.fused_adam import FusedAdam
    from keras_nmt.model import Seq2Seq
    from keras_nmt.trainer import Trainer

    def batch(source, target):
        source = tf.constant(source, tf.int32)
        labels = tf.constant(target, tf.int32)
        decoder_input = tf.where(
            labels == 0, 0, tf.concat([tf.ones_like(labels[:, :1]), labels[:, :-1]], axis=1)
        )
        return {"source": source, "decoder_input": decoder_input}, labels

    a = batch([[4, 5, 6, 7, 2], [8, 9, 2, 0, 0]], [[5, 6, 7, 2], [9, 2, 0, 0]])
    b = batch(
        [[10, 11, 2], [12, 2, 0], [13, 14, 2]],
        [[11, 12, 13, 14, 2], [7, 2, 0, 0, 0], [6, 6, 2, 0, 0]],
    )

    def pad(x, width=5):
        return tf.pad(x, [[0, 0], [0, width - x.shape[1]]])

    both = (
        {key: tf.concat([pad(a[0][key]), pad(b[0][key])], axis=0) for key in a[0]},
        tf.concat([pad(a[1]), pad(b[1])], axis=0),
    )
    single = tf.distribute.get_strategy()
    mirrored_strategy = make_strategy("mirrored")
    datasets = {
        single: tf.data.Dataset.from_tensors(both).repeat(),
        mirrored_strategy: tf.data.Dataset.from_tensors(a)
        .concatenate(tf.data.Dataset.from_tensors(b))
        .repeat(),
    }

    def new_model():
        keras.utils.set_random_seed(7)
        model = Seq2Seq(20, 20, embedding_dim=8, encoder_units=8, decoder_units=8, dropout=0.0)
        model.build()
        return model

    initial = new_model().get_weights()

    def run(strategy, clip, optimizer_class=keras.optimizers.SGD, learning_rate=0.5):
        replicas = strategy.num_replicas_in_sync
        with strategy.scope():
            model = new_model()
            model.set_weights(initial)
            optimizer = optimizer_class(
                learning_rate, global_clipnorm=clip / replicas if clip else None
            )
        trainer = Trainer(model, optimizer, strategy)
        dataset = datasets[strategy]
        iterator = iter(strategy.distribute_datasets_from_function(lambda _: dataset))
        sums = [trainer.train_step(iterator, tf.constant(1)).numpy().tolist() for _ in range(3)]
        # Every device's copy of every variable must have been updated alike.
        copies = [strategy.experimental_local_results(v.value) for v in model.variables]
        spread = max(float(np.max(np.abs(c[0] - c[-1]))) for c in copies)
        return sums, model.get_weights(), spread

    result = {"replicas": mirrored_strategy.num_replicas_in_sync}
    runs = {"clip=None": (None,), "clip=0.05": (0.05,), "fused_adam": (None, FusedAdam, 0.01)}
    for name, arguments in runs.items():
        single_sums, single_weights, _ = run(single, *arguments)
        mirrored_sums, mirrored_weights, spread = run(mirrored_strategy, *arguments)
        result[name] = {
            "device_spread": spread,
            "single_sums": single_sums,
            "mirrored_sums": mirrored_sums,
            **weight_distances(initial, single_weights, mirrored_weights),
        }
    pathlib.Path(out).write_text(json.dumps(result))


def train_and_dump(run_dir: str, weights: str, overrides) -> None:
    """`training.train` (strategy from the overrides, TF_CONFIG from the environment), then
    this process's final model variables to `weights` (.npz)."""
    import numpy as np

    from keras_nmt import trainer as trainer_module
    from keras_nmt.training import train

    fit = trainer_module.Trainer.fit

    def fit_and_dump(self, *args, **kwargs):
        fit(self, *args, **kwargs)
        np.savez(weights, *[variable.numpy() for variable in self.model.variables])

    trainer_module.Trainer.fit = fit_and_dump
    train(_config(overrides), run_dir, log=print)


def kill_at_step(epoch: int, step: int, run_dir: str, overrides) -> None:
    """`training.train`, SIGKILLed by itself at the end of step `step` of epoch `epoch`."""
    import keras

    from keras_nmt import training

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
    from keras_nmt import checkpoint, training

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


def fit_mirrored() -> None:
    """`Seq2Seq.fit` under MirroredStrategy for 2 steps, each replica's batches from its own
    pipeline (`distribute_datasets_from_function`), the two replicas' of different shapes."""
    import keras
    import tensorflow as tf

    from keras_nmt.distribute import make_strategy
    from keras_nmt.model import Seq2Seq

    def batch(source, labels):
        labels = tf.constant(labels, tf.int32)
        decoder_input = tf.concat([tf.ones_like(labels[:, :1]), labels[:, :-1]], axis=1)
        return {"source": tf.constant(source, tf.int32), "decoder_input": decoder_input}, labels

    a = batch([[4, 5, 6, 2], [7, 8, 9, 2]], [[5, 6, 7, 2], [9, 8, 3, 2]])
    b = batch([[9, 2], [10, 2]], [[11, 2], [7, 2]])
    strategy = make_strategy("mirrored")
    if strategy.num_replicas_in_sync != 2:
        raise SystemExit(f"expected 2 replicas, got {strategy.num_replicas_in_sync}")
    with strategy.scope():
        model = Seq2Seq(20, 20, embedding_dim=8, encoder_units=8, decoder_units=8, dropout=0.0)
        model.build()
        model.compile(optimizer=keras.optimizers.SGD(0.5))

    def pipeline(_):
        return tf.data.Dataset.from_tensors(a).concatenate(tf.data.Dataset.from_tensors(b)).repeat()

    model.fit(
        strategy.distribute_datasets_from_function(pipeline), epochs=1, steps_per_epoch=2, verbose=0
    )


if __name__ == "__main__":
    if os.environ.get("KERAS_NMT_TEST_CPUS"):
        import tensorflow as tf

        cpu = tf.config.list_physical_devices("CPU")[0]
        count = int(os.environ["KERAS_NMT_TEST_CPUS"])
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * count
        )
    command, *arguments = sys.argv[1:]
    if command == "mirrored":
        mirrored(*arguments)
    elif command == "train":
        train_and_dump(arguments[0], arguments[1], arguments[2:])
    elif command == "kill-at-step":
        kill_at_step(int(arguments[0]), int(arguments[1]), arguments[2], arguments[3:])
    elif command == "kill-in-save":
        kill_in_save(arguments[0], arguments[1:])
    elif command == "fit-mirrored":
        fit_mirrored()
    else:
        raise SystemExit(f"unknown command {command!r}")
