"""The tf.distribute strategy a training run uses (`train.strategy`).

- `default`: TensorFlow's default strategy, one device;
- `mirrored`: `tf.distribute.MirroredStrategy` over the local GPUs, or, on a machine without
  GPUs, over every logical CPU device (tests split the CPU in two with
  `tf.config.set_logical_device_configuration`);
- `multi_worker`: `tf.distribute.MultiWorkerMirroredStrategy`, one process per worker, each
  started with its own `TF_CONFIG` (see README). Create it before any other TensorFlow op
  runs: collective ops are configured when the strategy is made.
"""

from __future__ import annotations

import json
import os

import tensorflow as tf

from keras_nmt.config import STRATEGIES
from keras_nmt.errors import ConfigError


def make_strategy(name: str) -> tf.distribute.Strategy:
    """The strategy called `name` (one of `config.STRATEGIES`).

    Raises:
        ConfigError: an unknown name, or `multi_worker` without a usable `TF_CONFIG`.
    """
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
        return tf.distribute.MirroredStrategy([device.name for device in devices])
    if name == "multi_worker":
        check_tf_config(os.environ.get("TF_CONFIG"))
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ConfigError(f"train.strategy: expected one of {list(STRATEGIES)}, got {name!r}")


def check_tf_config(text: str | None) -> None:
    """Checks that `TF_CONFIG` names a cluster of workers and this process's place in it,
    e.g. `{"cluster": {"worker": ["host1:12345", "host2:12345"]}, "task": {"type":
    "worker", "index": 0}}`; MultiWorkerMirroredStrategy's own errors are far less clear."""
    example = (
        '{"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
        '"task": {"type": "worker", "index": 0}}'
    )
    if not text:
        raise ConfigError(
            f"train.strategy multi_worker: set TF_CONFIG for each worker, e.g. {example}"
        )
    try:
        config = json.loads(text)
        workers = config["cluster"]["worker"]
        task = config["task"]
        index = int(task["index"])
    except (ValueError, KeyError, TypeError):
        raise ConfigError(f"TF_CONFIG: expected JSON like {example}, got {text!r}") from None
    if task.get("type") not in ("worker", "chief"):
        raise ConfigError(f"TF_CONFIG: task type must be worker or chief, got {task.get('type')!r}")
    if task["type"] == "worker" and not 0 <= index < len(workers):
        raise ConfigError(
            f"TF_CONFIG: task index {index} is not one of the {len(workers)} workers {workers}"
        )


def _cluster_resolver(strategy: tf.distribute.Strategy):
    """The cluster resolver of a multi-worker strategy, else None."""
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return None
    return getattr(strategy, "cluster_resolver", None)


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Whether this process writes the run directory: always, except for the workers of a
    multi-worker run other than the chief (worker 0 when the cluster has no `chief`)."""
    resolver = _cluster_resolver(strategy)
    if resolver is None:
        return True
    if resolver.task_type == "chief" or resolver.task_type is None:
        return True
    return (
        resolver.task_type == "worker"
        and resolver.task_id == 0
        and ("chief" not in resolver.cluster_spec().as_dict())
    )


def any_worker(strategy: tf.distribute.Strategy, flag: bool) -> bool:
    """Whether `flag` is True in any worker of a multi-worker run (a collective: every worker
    must call it); `flag` itself for the other strategies."""
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return flag
    value = strategy.run(lambda: tf.constant(int(flag)))
    # ReduceOp has only SUM and MEAN: a flag is up somewhere when the sum is positive.
    return bool(strategy.reduce(tf.distribute.ReduceOp.SUM, value, axis=None).numpy() > 0)


def replicas_per_pipeline(
    strategy: tf.distribute.Strategy, input_context: tf.distribute.InputContext
) -> int:
    """The replicas one input pipeline feeds: an optimizer step takes a batch for each."""
    return strategy.num_replicas_in_sync // input_context.num_input_pipelines


def worker_name(strategy: tf.distribute.Strategy) -> str:
    """This process's task in a multi-worker run (`worker1`, `chief0`), or `worker0` for
    the other strategies: what names a file each process writes on its own."""
    resolver = _cluster_resolver(strategy)
    if resolver is None:
        return "worker0"
    return f"{resolver.task_type or 'worker'}{resolver.task_id or 0}"
