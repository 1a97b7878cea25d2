"""Checkpoint averaging and the training time budget."""

import functools
import math
import re

import numpy as np
import pytest
import tensorflow as tf

from keras_nmt import cli
from keras_nmt.errors import UserError
from keras_nmt.inference.loading import load
from keras_nmt.inference.translator import Translator
from keras_nmt.run_dir import RunDir
from keras_nmt.training import callbacks
from keras_nmt.training import train as train_module
from keras_nmt.training.averaging import average_run, best_epochs, epoch_checkpointer
from keras_nmt.training.checkpoint import Checkpointer
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
    assert averaged.translate(["one two"])  # a loadable run directory that translates
    # With best_metric val_bleu, final/ is the better of the two by beam-search BLEU.
    (line,) = [m for m in messages if m.startswith(f"{run.final}:")]
    numbers = re.search(r"val BLEU with beam 5: (\S+) averaged, (\S+) the best epoch", line)
    averaged_bleu, best_bleu = map(float, numbers.groups())
    source = run.averaged if averaged_bleu >= best_bleu else run.path
    assert RunDir(run.final).weights.read_bytes() == RunDir(source).weights.read_bytes()


def test_best_epochs_ranks_by_the_metric_skips_missing_values_and_breaks_ties_late():
    scores = {1: 30.0, 2: 35.0, 3: math.nan, 4: 33.0, 5: 35.0}
    assert best_epochs(scores, 2, "max") == [2, 5]
    assert best_epochs(scores, 3, "max") == [2, 4, 5]
    assert best_epochs(scores, 2, "min") == [1, 4]
    assert best_epochs(scores, 9, "max") == [1, 2, 4, 5]  # never the epoch without a value
    assert best_epochs({}, 2, "max") == []


def test_epoch_weights_keeps_the_best_epochs_of_a_scripted_run(tmp_path):
    """A scripted val_bleu sequence, the finished epochs' values read from history.csv as a
    resumed run would: after each epoch end, exactly the two best epochs have weights, and
    each checkpoint holds the value the variable had at its epoch's end."""
    run = RunDir(tmp_path)
    variable = tf.Variable(0.0)
    checkpointer = Checkpointer(run.epochs, tf.train.Checkpoint(v=variable), keep=None)
    keep = functools.partial(train_module._best_epochs, run, "val_bleu", "max", 2)
    callback = callbacks.EpochWeights(checkpointer, keep)
    script = [10.0, 30.0, 20.0, math.nan, 40.0, 30.0]  # epoch 4 has no val_bleu
    expected = [[1], [1, 2], [2, 3], [2, 3], [2, 5], [5, 6]]
    rows = ["epoch,val_bleu"]
    for epoch, (value, kept) in enumerate(zip(script, expected)):
        variable.assign(float(epoch + 1))
        logs = {} if math.isnan(value) else {"val_bleu": value}
        callback.on_epoch_end(epoch, logs)
        assert checkpointer.steps() == kept
        rows.append(f"{epoch},{'NA' if math.isnan(value) else value}")
        run.history.write_text("\n".join(rows) + "\n")
    for step in checkpointer.steps():
        checkpointer.read(step)
        assert variable.numpy() == step


def test_training_averages_the_best_epochs_and_ships_the_better_of_average_and_best(
    toy_corpus_dir, tmp_path
):
    messages = []
    config = tiny_config(toy_corpus_dir, "train.epochs=4", "train.average_best_epochs=2")
    train(config, tmp_path / "run", log=messages.append)
    run = RunDir(tmp_path / "run")
    losses = {int(row["epoch"]) + 1: row["val_loss"] for row in run.finished_epochs()}
    kept = best_epochs(losses, 2, "min")
    assert [int(p.name.split("-")[1]) for p in sorted(run.epochs.iterdir())] == kept
    named = f"{kept[0]}-{kept[1]}" if kept[1] == kept[0] + 1 else f"{kept[0]}, {kept[1]}"
    assert any(m.startswith(f"averaged the weights of epochs {named} into") for m in messages)
    # final/ is a copy of the averaged weights or of the best epoch's, as its log line says,
    # and the choice follows the two val_loss values it logs.
    (line,) = [m for m in messages if m.startswith(f"{run.final}:")]
    numbers = re.search(r"val_loss: (\S+) averaged, (\S+) the best epoch", line).groups()
    averaged_loss, best_loss = map(float, numbers)
    assert best_loss == pytest.approx(min(losses.values()), rel=1e-3)
    source = run.averaged if averaged_loss <= best_loss else run.path
    assert ("the averaged weights" in line) == (source == run.averaged)
    final = RunDir(run.final)
    assert final.weights.read_bytes() == RunDir(source).weights.read_bytes()
    assert load(run.final).translate(["one two"])


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
