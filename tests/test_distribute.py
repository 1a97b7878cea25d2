"""Scale-out: tf.distribute strategies (mirrored over 2 logical CPU devices, two workers on
127.0.0.1), gradient accumulation, mixed precision. Subprocess sides are in
tests/distributed_script.py; resuming after SIGKILL is in tests/test_resume.py."""

from __future__ import annotations

import json
import os
import pathlib
import socket
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_nmt.config import Config, TrainConfig
from keras_nmt.errors import ConfigError
from keras_nmt.run_dir import RunDir
from keras_nmt.training.checkpoint import Checkpointer
from keras_nmt.training.optimizer import make_optimizer
from keras_nmt.training.train import train
from tests.test_training import TINY, quiet

ROOT = pathlib.Path(__file__).resolve().parent.parent
# Small batches, so that an epoch of the toy corpus has a dozen steps to be killed in.
RESUMABLE = ["train.batch_size=4", "train.backup_every_steps=3", "model.dropout=0.2"]


def script(*arguments, env=None, timeout=600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "tests.distributed_script", *map(str, arguments)],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def overrides(corpus_dir, *more) -> list[str]:
    return [*TINY, f"data.dir={corpus_dir}", *more]


def latest_state(run: pathlib.Path) -> tuple[int, dict[str, np.ndarray]]:
    """The step and every saved tensor of a run's latest checkpoint."""
    checkpointer = Checkpointer(RunDir(run).backup, tf.train.Checkpoint())
    step = checkpointer.steps()[-1]
    reader = tf.train.load_checkpoint(str(checkpointer.path(step) / "state"))
    names = [name for name in reader.get_variable_to_shape_map() if "OBJECT_GRAPH" not in name]
    return step, {name: reader.get_tensor(name) for name in names}


def assert_same_state(a: pathlib.Path, b: pathlib.Path) -> None:
    step_a, state_a = latest_state(a)
    step_b, state_b = latest_state(b)
    assert step_a == step_b
    assert state_a.keys() == state_b.keys()
    for name in state_a:
        np.testing.assert_allclose(state_a[name], state_b[name], rtol=1e-5, atol=1e-6, err_msg=name)


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for handle in sockets:
        handle.bind(("127.0.0.1", 0))
    ports = [handle.getsockname()[1] for handle in sockets]
    for handle in sockets:
        handle.close()
    return ports


def test_two_workers_on_loopback_end_with_the_same_weights(toy_corpus_dir, tmp_path):
    workers = [f"127.0.0.1:{port}" for port in free_ports(2)]
    run = tmp_path / "run"
    # A time budget (never reached: its stop decision is agreed on by a collective at every
    # epoch end), epoch weights kept for averaging (every worker takes part in the save), and
    # the corpus cached in a file (each worker writes its own).
    settings = overrides(
        toy_corpus_dir,
        "train.strategy=multi_worker",
        "train.epochs=3",
        "train.max_minutes=1000",
        "train.average_last_epochs=2",
        "data.memory_cache_max_pairs=0",
    )
    processes = []
    for index in range(2):
        tf_config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
        processes.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "tests.distributed_script",
                    "train",
                    str(run),
                    str(tmp_path / f"weights-{index}.npz"),
                    *settings,
                ],
                cwd=ROOT,
                env={**os.environ, "TF_CONFIG": json.dumps(tf_config)},
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    outputs = [process.communicate(timeout=600) for process in processes]
    for process, (_, stderr) in zip(processes, outputs):
        assert process.returncode == 0, stderr[-3000:]
    weights = [np.load(tmp_path / f"weights-{index}.npz") for index in range(2)]
    assert len(weights[0].files) == len(weights[1].files) > 0
    for name in weights[0].files:
        np.testing.assert_array_equal(weights[0][name], weights[1][name])
    # Only the chief wrote the run directory, and the loss went down.
    history = RunDir(run).finished_epochs()
    assert [row["epoch"] for row in history] == [0, 1, 2]
    assert history[-1]["loss"] < history[0]["loss"]
    assert "training corpus" in outputs[0][0] and "training corpus" not in outputs[1][0]
    assert all(row["training_minutes"] > 0 for row in history)
    assert sorted(p.name for p in RunDir(run).epochs.iterdir()) == [
        "ckpt-000000002",
        "ckpt-000000003",
    ]
    assert "averaged the weights of epochs 2-3" in outputs[0][0]
    assert (RunDir(run).averaged / "model.weights.h5").is_file()
    caches = sorted(p.name.split("-")[1] for p in RunDir(run).cache.glob("*.index"))
    assert caches == ["worker0", "worker1"]


def test_accumulation_steps_in_a_training_run(toy_corpus_dir, tmp_path):
    from keras_nmt.data.pipeline import count_batches, make_dataset, tokenized_corpus
    from keras_nmt.data.tokenizer import Tokenizer
    from keras_nmt.training.train import corpora

    settings = overrides(toy_corpus_dir, "train.epochs=2", "train.accumulation_steps=3")
    config = Config.from_dict({}, settings)
    result = train(config, tmp_path / "run", log=quiet)
    run = RunDir(tmp_path / "run")
    saved = Config.from_yaml(run.config)
    tokenized = tokenized_corpus(
        corpora(saved)[0][0], Tokenizer.load(run.source_model), Tokenizer.load(run.target_model)
    )
    batches = count_batches(make_dataset(tokenized, saved.data, saved.train, shuffle=False))
    # Each epoch: every batch once, 3 to an optimizer step (the last step takes the
    # missing ones from the start of the pass).
    steps, _ = latest_state(tmp_path / "run")
    assert batches > 3 and batches % 3
    assert steps == 2 * -(-batches // 3)
    assert result.history[-1]["loss"] < result.history[0]["loss"]


@pytest.mark.parametrize("precision", ["bfloat16", "float16"])
def test_mixed_precision_keeps_variables_and_logits_in_float32(precision, toy_corpus_dir, tmp_path):
    settings = overrides(toy_corpus_dir, "train.epochs=2", f"train.mixed_precision={precision}")
    result = train(Config.from_dict({}, settings), tmp_path / "run", log=quiet)
    assert all(np.isfinite(row["loss"]) for row in result.history)
    assert result.history[-1]["loss"] < result.history[0]["loss"]
    assert keras.config.dtype_policy().name == "float32"  # the global policy is restored
    from keras_nmt.training.train import build_model, dtype_policy

    with dtype_policy(precision):
        model = build_model(Config.from_dict({}, settings), 40, 40)
    assert model.decoder.cell.compute_dtype == precision
    assert {variable.dtype for variable in model.variables} <= {"float32", "uint32", "int64"}
    inputs = {"source": tf.constant([[4, 5, 2]]), "decoder_input": tf.constant([[1, 6]])}
    logits, _ = model.packed_logits(inputs, tf.constant([[6, 2]]))
    assert logits.dtype == tf.float32


def test_multi_worker_needs_tf_config(monkeypatch):
    from keras_nmt.training.distribute import make_strategy

    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ConfigError, match="set TF_CONFIG"):
        make_strategy("multi_worker")
    monkeypatch.setenv("TF_CONFIG", '{"cluster": {"worker": ["a:1"]}, "task": {"index": 3}}')
    with pytest.raises(ConfigError, match="TF_CONFIG: task type"):
        make_strategy("multi_worker")
    monkeypatch.setenv("TF_CONFIG", "not json")
    with pytest.raises(ConfigError, match="expected JSON"):
        make_strategy("multi_worker")


def test_the_optimizer_clips_the_global_gradient_and_scales_float16_losses():
    # Not split between replicas: `Seq2Seq.train_step` clips the global gradient itself.
    assert make_optimizer(TrainConfig(clip_norm=5.0)).global_clipnorm == 5.0
    assert make_optimizer(TrainConfig(clip_norm=0.0)).global_clipnorm is None
    scaled = make_optimizer(TrainConfig(mixed_precision="float16"))
    assert isinstance(scaled, keras.optimizers.LossScaleOptimizer)
