"""Fault tolerance: a run killed by SIGKILL (mid-epoch, or while writing a checkpoint) resumes
to the weights of a run that was never interrupted, on one device and mirrored over 2 logical
CPU devices; checkpoints are atomic. Subprocess sides are in tests/distributed_script.py."""

from __future__ import annotations

import re
import signal

import pytest
import tensorflow as tf

from keras_nmt.config import Config
from keras_nmt.run_dir import RunDir
from keras_nmt.training.checkpoint import Checkpointer
from keras_nmt.training.train import train
from tests.conftest import toy_pairs, write_pairs
from tests.test_distribute import RESUMABLE, assert_same_state, latest_state, overrides, script
from tests.test_training import quiet


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """A run of the toy task with `RESUMABLE` settings, 3 epochs without interruption: what a
    killed and resumed run must end with. Returns `(settings, run directory)`."""
    directory = tmp_path_factory.mktemp("uninterrupted")
    corpus = directory / "corpus"
    pairs = toy_pairs()
    write_pairs(corpus, "train", pairs)
    write_pairs(corpus, "valid", pairs[:8])
    settings = overrides(corpus, *RESUMABLE, "train.epochs=3")
    train(Config.from_dict({}, settings), directory / "whole", log=quiet)
    return settings, directory / "whole"


def test_run_killed_mid_epoch_resumes_to_the_uninterrupted_weights(uninterrupted, tmp_path):
    settings, whole_run = uninterrupted
    config = Config.from_dict({}, settings)

    killed = tmp_path / "killed"
    done = script("kill-at-step", 1, 4, killed, *settings)
    assert done.returncode == -signal.SIGKILL, done.stderr[-3000:]
    assert len(RunDir(killed).finished_epochs()) == 1  # killed in the second epoch
    messages = []
    result = train(config, killed, log=messages.append)
    # It resumed from the last checkpoint inside epoch 2, not from the epoch's start.
    resumed = next(m for m in messages if m.startswith("resuming"))
    step = re.search(r"epoch 2, step (\d+),", resumed)
    assert step and 1 <= int(step.group(1)) <= 4, resumed
    assert [row["epoch"] for row in result.history] == [0, 1, 2]
    assert_same_state(whole_run, killed)
    whole = RunDir(whole_run).finished_epochs()
    for a, b in zip(whole, result.history):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-5)
        assert a["val_loss"] == pytest.approx(b["val_loss"], rel=1e-5)


def test_mirrored_run_killed_mid_epoch_resumes_to_the_uninterrupted_weights(
    toy_corpus_dir, tmp_path
):
    """`train.strategy: mirrored` over 2 logical CPU devices: a run killed inside its second
    epoch and resumed (in a new process) ends as the uninterrupted run does, logs included."""
    two_cpus = {"KERAS_NMT_TEST_CPUS": "2"}
    settings = overrides(toy_corpus_dir, *RESUMABLE, "train.epochs=2", "train.strategy=mirrored")
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    done = script("train", whole, tmp_path / "unused.npz", *settings, env=two_cpus)
    assert done.returncode == 0, done.stderr[-3000:]
    done = script("kill-at-step", 1, 3, killed, *settings, env=two_cpus)
    assert done.returncode == -signal.SIGKILL, done.stderr[-3000:]
    done = script("train", killed, tmp_path / "unused.npz", *settings, env=two_cpus)
    assert done.returncode == 0, done.stderr[-3000:]
    assert re.search(r"resuming from .*: epoch 2, step [1-3],", done.stdout), done.stdout
    assert_same_state(whole, killed)
    expected, actual = RunDir(whole).finished_epochs(), RunDir(killed).finished_epochs()
    assert [row["epoch"] for row in actual] == [0, 1]
    for a, b in zip(expected, actual):
        for name in ("loss", "token_accuracy", "val_loss"):
            assert a[name] == pytest.approx(b[name], rel=1e-5), name


def test_kill_while_writing_a_checkpoint_leaves_the_previous_one_loadable(uninterrupted, tmp_path):
    settings, whole_run = uninterrupted
    run = tmp_path / "run"
    done = script("kill-in-save", run, *settings)
    assert done.returncode == -signal.SIGKILL, done.stderr[-3000:]
    backup = RunDir(run).backup
    # The second save's files were complete but never committed; the first is intact.
    assert [path.name for path in backup.iterdir() if path.name.startswith(".tmp-")]
    step, state = latest_state(run)
    assert step == 3
    config = Config.from_dict({}, settings)
    messages = []
    train(config, run, log=messages.append)
    assert any("optimizer step 3" in m for m in messages if m.startswith("resuming"))
    assert not [path for path in backup.iterdir() if path.name.startswith(".tmp-")]
    assert_same_state(whole_run, run)


def test_checkpointer_keeps_the_latest_and_cleans_partial_writes(tmp_path):
    variable = tf.Variable(1.0)
    checkpointer = Checkpointer(tmp_path, tf.train.Checkpoint(v=variable), keep=2)
    for step in (1, 2, 3):
        variable.assign(float(step))
        checkpointer.save(step)
    assert checkpointer.steps() == [2, 3]
    (tmp_path / ".tmp-partial").mkdir()
    variable.assign(0.0)
    assert checkpointer.restore() == 3
    assert float(variable) == 3.0
    assert not (tmp_path / ".tmp-partial").exists()
    assert Checkpointer(tmp_path / "none", tf.train.Checkpoint(v=variable)).restore() is None


def test_a_step_budget_stops_mid_epoch_and_a_larger_one_goes_on(uninterrupted, tmp_path):
    """`train.max_steps` stops at that optimizer step, the run directory says so on a rerun,
    and training on without the budget ends with the uninterrupted run's weights."""
    settings, whole_run = uninterrupted
    run = tmp_path / "budget"
    budget = Config.from_dict({}, [*settings, "train.max_steps=17"])
    train(budget, run, log=quiet)
    steps_per_epoch = latest_state(whole_run)[0] // 3  # the uninterrupted run: 3 epochs
    assert latest_state(run)[0] == 17 and 17 % steps_per_epoch  # stopped mid-epoch
    messages = []
    train(budget, run, log=messages.append)
    assert any("has taken train.max_steps = 17" in m for m in messages), messages
    assert latest_state(run)[0] == 17
    train(Config.from_dict({}, settings), run, log=quiet)
    assert_same_state(whole_run, run)
