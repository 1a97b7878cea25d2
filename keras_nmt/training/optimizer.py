"""The training optimizer: `make_optimizer(train)` builds `FusedAdam`, Keras's Adam with each
variable's update done by one fused TensorFlow kernel.

Keras 3's Adam updates a variable with about ten separate element-wise ops (two moment
updates, a square root, a division...), each a pass over memory; for the reference model's
6 M parameters that is a noticeable part of a training step on a CPU. TensorFlow's
`ResourceApplyAdam` kernel does the same update in one pass:

    m <- beta_1 m + (1 - beta_1) g          (Keras: m += (g - m)(1 - beta_1))
    v <- beta_2 v + (1 - beta_2) g^2        (Keras: v += (g^2 - v)(1 - beta_2))
    w <- w - lr sqrt(1 - beta_2^t) / (1 - beta_1^t) * m / (sqrt(v) + epsilon)

the same formula as `keras.optimizers.Adam.update_step` (epsilon outside the square root,
not scaled), so only float rounding differs; tests compare the two. The slots are Adam's
own (`_momentums`, `_velocities`), so checkpoints are interchangeable. AMSGrad falls back to
Keras's implementation.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from keras_nmt.config import TrainConfig


def _handle(variable) -> tf.Tensor:
    """The resource handle of a Keras or tf variable (the local copy under tf.distribute)."""
    if isinstance(variable, keras.Variable):
        variable = variable.value
    return variable.handle


@keras.saving.register_keras_serializable(package="keras_nmt")
class FusedAdam(keras.optimizers.Adam):
    """`keras.optimizers.Adam` (same arguments) with fused per-variable updates."""

    def update_step(self, gradient, variable, learning_rate):
        if self.amsgrad:
            return super().update_step(gradient, variable, learning_rate)
        dtype = variable.dtype
        index = self._get_variable_index(variable)
        step = tf.cast(self.iterations + 1, dtype)
        tf.raw_ops.ResourceApplyAdam(
            var=_handle(variable),
            m=_handle(self._momentums[index]),
            v=_handle(self._velocities[index]),
            beta1_power=tf.pow(tf.cast(self.beta_1, dtype), step),
            beta2_power=tf.pow(tf.cast(self.beta_2, dtype), step),
            lr=tf.cast(learning_rate, dtype),
            beta1=tf.cast(self.beta_1, dtype),
            beta2=tf.cast(self.beta_2, dtype),
            epsilon=tf.cast(self.epsilon, dtype),
            grad=tf.cast(gradient, dtype),
        )
        return None


def make_optimizer(train: TrainConfig) -> keras.optimizers.Optimizer:
    """`FusedAdam` with `train.learning_rate` and global-norm clipping at `train.clip_norm`
    (of the global batch's gradient: `Seq2Seq.train_step`), wrapped in a dynamic
    `LossScaleOptimizer` for `mixed_precision: float16`. Create it in the strategy's scope."""
    optimizer = FusedAdam(train.learning_rate, global_clipnorm=train.clip_norm or None)
    if train.mixed_precision == "float16":
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer
