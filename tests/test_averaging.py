"""Checkpoint averaging and the training time budget."""

import numpy as np
import pytest

from keras_nmt import cli
from keras_nmt.errors import UserError
from keras_nmt.inference.loading import load
from keras_nmt.inference.translator import Translator
from keras_nmt.run_dir import RunDir
from keras_nmt.training import callbacks
from keras_nmt.training.averaging import average_run, epoch_checkpointer
from keras_nmt.training.train import train
from tests.test_training import quiet, tiny_config


def _epoch_values(run: RunDir, epoch: int) -> list[np.ndarray]:
    translator = Translator.load_run_dir(run.path)
    checkpointer = epoch_checkpointer(run, translator.model, keep=10, write=False)
    checkpointer.read(epoch)
    return [v.numpy() for v in translator.model.variables]


def test_training_keeps_the_last_epochs_and_writes_their_mean(toy_corpus_dir, tmp_path):
    messages = []
    config = tiny_config(toy_corpus_dir, "train.epochs=4", "train.average_last_epochs=3")
    config = config.replace(["train.validation_bleu_every=1", "train.best_metric=val_bleu"])
    train(config, tmp_path / "run", log=messages.append)
    run = RunDir(tmp_path / "run")
    # Epoch 1 was pruned; 2-4 are kept.
    assert sorted(p.name for p in run.epochs.iterdir()) == [
        "ckpt-000000002",
        "ckpt-000000003",
        "ckpt-000000004",
    ]
    assert any(
        m.startswith("averaged the weights of epochs 2-4") and "val_bleu" in m for m in messages
    )
    epochs = [_epoch_values(run, epoch) for epoch in (2, 3, 4)]
    averaged = load(run.averaged)
    kinds = [np.dtype(v.dtype).kind for v in averaged.model.variables]
    assert kinds.count("f") > 10
    for index, (kind, variable) in enumerate(zip(kinds, averaged.model.variables)):
        if kind == "f":
            expected = (epochs[0][index] + epochs[1][index] + epochs[2][index]) / 3
            np.testing.assert_allclose(variable.numpy(), expected, rtol=1e-6, atol=1e-7)
    # The epochs differ, so the mean is none of them (the test is not vacuous).
    assert not np.allclose(epochs[1][kinds.index("f")], epochs[2][kinds.index("f")])
    # The last epoch's weights are what training ended with: the backup holds them too.
    assert averaged.translate(["one two"])  # a loadable run directory that translates


def test_cli_average_picks_the_last_epochs_and_refuses_a_run_without_them(
    toy_corpus_dir, one_epoch_run, tmp_path, capsys
):
    run = tmp_path / "run"
    train(
        tiny_config(toy_corpus_dir, "train.epochs=3", "train.average_last_epochs=3"), run, log=quiet
    )
    assert (
        cli.main(
            [
                "average",
                "--run-dir",
                str(run),
                "--last",
                "1",
                "--output-dir",
                str(tmp_path / "last"),
            ]
        )
        == 0
    )
    assert "epochs 3 into" in capsys.readouterr().out
    last = load(tmp_path / "last").model.variables
    expected = _epoch_values(RunDir(run), 3)
    for variable, value in zip(last, expected):
        if np.dtype(variable.dtype).kind == "f":  # (not the dropout RNG states)
            np.testing.assert_array_equal(variable.numpy(), value)

    assert cli.main(["average", "--run-dir", str(one_epoch_run.run_dir)]) == 2
    assert "no epoch weights" in capsys.readouterr().err
    with pytest.raises(UserError, match="--last"):
        average_run(run, tmp_path / "x", last=0)


def test_time_budget_stops_after_the_epoch_that_leaves_no_room(toy_corpus_dir, tmp_path):
    messages = []
    run = tmp_path / "run"
    # A budget of 6 ms: the first epoch, on any machine, leaves no room for a second.
    config = tiny_config(toy_corpus_dir, "train.epochs=5", "train.max_minutes=0.0001")
    result = train(config, run, log=messages.append)
    assert len(result.history) == 1
    assert any(m.startswith("time budget:") for m in messages)
    assert result.history[0]["training_minutes"] > 0
    # The run is over: a rerun does not go on.
    rerun = []
    train(config, run, log=rerun.append)
    assert any("stopped early after 1 epochs" in m for m in rerun)


def test_time_budget_counts_the_time_between_epochs(monkeypatch):
    """Saves and the next input pipeline run between one epoch's end and the next one's
    begin: an epoch's length is measured from end to end, and the longest one counts, so
    the budget is not overrun."""
    clock = iter([60.0, 150.0, 210.0])  # the ends of epochs 1-3, in seconds
    monkeypatch.setattr(callbacks.time, "time", lambda: next(clock))
    messages = []
    budget = callbacks.TimeBudget(0.0, 0.0, 3.9, agree=lambda stop: stop, log=messages.append)

    class Model:
        stop_training = False

    budget.set_model(Model())
    logs = {}
    budget.on_epoch_end(0, logs)  # 1.0 min spent, + 1.0 fits in 3.9
    assert logs["training_minutes"] == 1.0 and not budget.model.stop_training
    # Epoch 2's steps may have taken 1.0 min, but it ends 1.5 min after epoch 1's end: the
    # time between the two counts. 2.5 spent + 1.5 = 4.0 > 3.9.
    budget.on_epoch_end(1, logs)
    assert logs["training_minutes"] == 2.5 and budget.model.stop_training
    assert messages == [
        "time budget: 2.5 of train.max_minutes = 3.9 minutes spent, and an epoch takes up to "
        "1.5; stopping"
    ]
    # A short epoch after a long one: the long one still counts (3.5 + 1.5 > 4.9).
    budget.max_minutes, budget.model.stop_training = 4.9, False
    budget.on_epoch_end(2, logs)  # 3.5 spent, the epoch took 1.0
    assert logs["training_minutes"] == 3.5 and budget.model.stop_training
