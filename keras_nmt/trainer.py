"""`Trainer`: our training loop, for what `model.fit` cannot do here (`training._uses_trainer`):
the `mirrored` and `multi_worker` strategies and token-weighted gradient accumulation. Its
maths is `Seq2Seq.token_sums`, as in `Seq2Seq.train_step`.

Why not `model.fit` there:
- Keras 3.15's `fit` fails under MultiWorkerMirroredStrategy (keras-team/keras#20585): its
  `_symbolic_build` calls `strategy.reduce` on a nested PerReplica batch, and
  `reduce_per_replica` reduces scalar metrics with `axis=0`. Overriding `train_step` does not
  avoid either. This loop combines replicas with `ReplicaContext.all_reduce` inside
  `strategy.run`, which every strategy supports, and touches no Keras internals.
- The loss is the mean over every non-PAD target token of the global batch and of all
  accumulated micro-batches; Keras averages per replica (replicas with fewer tokens would
  weigh more) and its `gradient_accumulation_steps` averages per micro-batch.
- The loop knows its position (epoch, step), saved with the weights and the optimizer, so a
  killed run resumes at the same step with the same data (`pipeline.make_dataset` gives the
  same batches for the same epoch).
Keras callbacks (checkpoint, early stopping, CSV, TensorBoard) are driven as `fit` drives them.

One optimizer step (`train_step`), with R replicas:
1. for each of the step's `n` micro-batches (`accumulation_steps`, fewer at an epoch's end),
   in each replica: the teacher-forced pass (generator on non-PAD positions only), the SUM
   of its token losses and that sum's gradients; then an all-reduce (SUM) across replicas of
   the gradients and of the counts (loss, NLL, correct, tokens);
2. the micro-batches' gradients are added and divided by their total token count: `G`, the
   gradient of the mean token loss of everything the step saw;
3. each replica calls `optimizer.apply(G / R)`. Keras's optimizer all-reduces (sums) what
   the replicas pass, which gives back `G`; its `global_clipnorm` is `clip_norm / R` (see
   `make_optimizer`), and clipping `G / R` to `clip_norm / R` is clipping `G` to `clip_norm`.
   So every strategy and accumulation setting computes the same update as one device on the
   whole global batch. (The price is a second all-reduce of the gradients when R > 1.)
"""

from __future__ import annotations

import math
from collections.abc import Callable

import keras
import numpy as np
import tensorflow as tf

from keras_nmt.checkpoint import Checkpointer, TrainingPosition
from keras_nmt.config import TrainConfig
from keras_nmt.distribute import replicas_per_pipeline
from keras_nmt.fused_adam import FusedAdam

# Per-step and per-epoch sums: loss, NLL, correct predictions, non-PAD target tokens.
_LOSS, _NLL, _CORRECT, _TOKENS = range(4)


def make_optimizer(train: TrainConfig, replicas: int) -> keras.optimizers.Optimizer:
    """Adam with `train.learning_rate` and global-norm clipping at `train.clip_norm` of the
    global gradient (set to `clip_norm / replicas`: see the module docstring), wrapped in a
    dynamic `LossScaleOptimizer` for `mixed_precision: float16`. Create it in the strategy's
    scope."""
    clip = train.clip_norm / replicas if train.clip_norm else None
    optimizer = FusedAdam(train.learning_rate, global_clipnorm=clip)
    if train.mixed_precision == "float16":
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer


class Trainer:
    """Trains `model` under `strategy` (see the module docstring).

    Args:
        model: a built `Seq2Seq`, created in `strategy`'s scope.
        optimizer: from `make_optimizer`, created in `strategy`'s scope.
        strategy: a `tf.distribute.Strategy`.
        label_smoothing: of the training loss (validation reports the same loss).
        accumulation_steps: micro-batches per optimizer step.

    `checkpoint` is a `tf.train.Checkpoint` of the model, the optimizer and the loop's
    `position` (`checkpoint.TrainingPosition`: epoch, step within it, the epoch's running
    sums, and whether a callback such as early stopping ended training).
    """

    def __init__(
        self,
        model: keras.Model,
        optimizer: keras.optimizers.Optimizer,
        strategy: tf.distribute.Strategy,
        label_smoothing: float = 0.0,
        accumulation_steps: int = 1,
    ):
        if accumulation_steps < 1:
            raise ValueError(f"accumulation_steps: expected >= 1, received {accumulation_steps}")
        self.model = model
        self.optimizer = optimizer
        self.strategy = strategy
        self.label_smoothing = label_smoothing
        self.accumulation_steps = accumulation_steps
        with strategy.scope():
            self.optimizer.build(model.trainable_variables)
            self.position = TrainingPosition()
        self.checkpoint = self.position.checkpoint(model, optimizer)
        self.train_step = tf.function(self._train_step_fn)
        self._evaluate_batch = tf.function(self._token_sums, reduce_retracing=True)

    # -- the maths -------------------------------------------------------------------------

    def _token_sums(self, batch, training: bool = False):
        """`(4,)` float32 sums over the batch's non-PAD target tokens: loss, NLL, correct,
        tokens (`Seq2Seq.token_sums`). `batch` is `(inputs, labels)` from
        `pipeline.make_dataset`."""
        inputs, labels = batch
        return self.model.token_sums(inputs, labels, self.label_smoothing, training=training)

    def _replica_gradients(self, batch):
        """In a replica: the gradients of the batch's summed token loss and its sums, both
        summed over all replicas (identical in every replica on return)."""
        with tf.GradientTape() as tape:
            sums = self._token_sums(batch, training=True)
            scaled = self.optimizer.scale_loss(sums[_LOSS])
        gradients = tape.gradient(scaled, self.model.trainable_variables)
        # Embedding gradients come as IndexedSlices: dense, to all-reduce and add them.
        gradients = [tf.convert_to_tensor(gradient) for gradient in gradients]
        context = tf.distribute.get_replica_context()
        return context.all_reduce(tf.distribute.ReduceOp.SUM, (gradients, sums))

    def _replica_apply(self, gradients, tokens):
        """In a replica: applies `G / R`, G = `gradients / tokens` (the optimizer sums the R
        replicas' values), scaling in one pass. The scaling also makes each replica's own
        copy: MirroredStrategy cannot all-reduce a tensor made outside the replicas
        ("destinations can not be empty")."""
        scale = 1.0 / (tf.maximum(tokens, 1.0) * self.strategy.num_replicas_in_sync)
        gradients = [gradient * scale for gradient in gradients]
        self.optimizer.apply(gradients, self.model.trainable_variables)

    def _micro_step(self, iterator):
        per_replica = self.strategy.run(self._replica_gradients, args=(next(iterator),))
        # All replicas hold the same all-reduced values: take this worker's first.
        return tf.nest.map_structure(
            lambda value: self.strategy.experimental_local_results(value)[0], per_replica
        )

    def _train_step_fn(self, iterator, micro_batches):
        """One optimizer step over `micro_batches` batches per replica from `iterator` (a
        distributed iterator); returns the step's `(4,)` sums."""
        gradients, sums = self._micro_step(iterator)
        if self.accumulation_steps > 1:
            for _ in tf.range(micro_batches - 1):
                more_gradients, more_sums = self._micro_step(iterator)
                gradients = [a + b for a, b in zip(gradients, more_gradients)]
                sums += more_sums
        self.strategy.run(self._replica_apply, args=(gradients, sums[_TOKENS]))
        self.position.sums.assign_add(tf.cast(sums, tf.float64))
        return sums

    # -- the loop --------------------------------------------------------------------------

    def fit(
        self,
        epoch_dataset: Callable[[int, tf.distribute.InputContext], tf.data.Dataset],
        epochs: int,
        micro_steps_per_epoch: int,
        callbacks: list[keras.callbacks.Callback],
        checkpointer: Checkpointer,
        save_every: int,
        validation_data: tf.data.Dataset | None = None,
    ) -> None:
        """Trains from the restored position up to `epochs` epochs.

        Args:
            epoch_dataset: `(epoch, input_context)` -> this input pipeline's endless dataset
                of per-replica batches for that epoch, the same every time it is called.
            epochs: the epoch count to reach.
            micro_steps_per_epoch: batches per replica in an epoch; an epoch has
                `ceil(micro_steps_per_epoch / accumulation_steps)` optimizer steps.
            callbacks: Keras callbacks, called as `fit` calls them.
            checkpointer: saves `checkpoint` every `save_every` optimizer steps and at every
                epoch end.
            validation_data: batches for the `val_*` metrics, evaluated at each epoch end
                in this process (every worker gets the same numbers).
        """
        steps = math.ceil(micro_steps_per_epoch / self.accumulation_steps)
        callback_list = keras.callbacks.CallbackList(
            callbacks, model=self.model, epochs=epochs, steps=steps
        )
        self.model.stop_training = False
        callback_list.on_train_begin()
        epoch = int(self.position.epoch.numpy())
        while epoch < epochs and not self.model.stop_training:
            start = int(self.position.step.numpy())
            if start == 0:
                self.position.sums.assign(tf.zeros([4], tf.float64))

            def pipeline(input_context, epoch=epoch, start=start):
                skip = (
                    start
                    * self.accumulation_steps
                    * replicas_per_pipeline(self.strategy, input_context)
                )
                return epoch_dataset(epoch, input_context).skip(skip)

            iterator = iter(self.strategy.distribute_datasets_from_function(pipeline))
            callback_list.on_epoch_begin(epoch)
            # Counted here, not read back from the variables at every step; `self.position.step` is
            # written when a checkpoint needs it.
            iterations, done = self.iterations(), start
            for step in range(start, steps):
                callback_list.on_train_batch_begin(step)
                micro_batches = min(
                    self.accumulation_steps,
                    micro_steps_per_epoch - step * self.accumulation_steps,
                )
                self.train_step(iterator, tf.constant(micro_batches, tf.int32))
                iterations, done = iterations + 1, step + 1
                callback_list.on_train_batch_end(step, self.logs())
                if self.model.stop_training:
                    break
                if done < steps and iterations % save_every == 0:
                    self.position.step.assign(done)
                    checkpointer.save(iterations)
            if self.model.stop_training and done < steps:
                break  # stopped mid-epoch (TerminateOnNaN): no epoch end
            logs = self.logs()
            logs["learning_rate"] = float(tf.convert_to_tensor(self.optimizer.learning_rate))
            if validation_data is not None:
                logs.update(
                    {f"val_{name}": value for name, value in self.evaluate(validation_data).items()}
                )
            callback_list.on_epoch_end(epoch, logs)
            epoch += 1
            self.position.epoch.assign(epoch)
            self.position.step.assign(0)
            self.position.stopped.assign(self.model.stop_training)
            checkpointer.save(iterations)
        callback_list.on_train_end()

    def iterations(self) -> int:
        """Optimizer steps taken (what checkpoints are numbered by)."""
        return int(self.optimizer.iterations.value.numpy())

    def logs(self, sums=None) -> dict[str, float]:
        """Per-token means of `sums` (default: the epoch so far): `loss` (with label
        smoothing), `perplexity` (exp of the mean NLL) and `token_accuracy`."""
        sums = self.position.sums.numpy() if sums is None else np.asarray(sums, np.float64)
        tokens = max(float(sums[_TOKENS]), 1.0)
        return {
            "loss": float(sums[_LOSS]) / tokens,
            "perplexity": math.exp(min(float(sums[_NLL]) / tokens, 700.0)),
            "token_accuracy": float(sums[_CORRECT]) / tokens,
        }

    def evaluate(self, dataset: tf.data.Dataset) -> dict[str, float]:
        """`logs` over all batches of `dataset`, computed in this process."""
        sums = np.zeros([4], np.float64)
        for batch in dataset:
            sums += self._evaluate_batch(batch).numpy()
        return self.logs(sums)
