"""Training: overfitting a toy task, resuming, reproducibility."""

import math

import numpy as np
import pytest
import tensorflow as tf

from keras_nmt.config import Config
from keras_nmt.run_dir import RunDir
from keras_nmt.training import train
from keras_nmt.translator import Translator
from tests.conftest import toy_pairs

TINY = [
    "data.source_vocab_size=40",
    "data.target_vocab_size=40",
    "data.valid=valid",
    "data.test=null",
    "model.embedding_dim=32",
    "model.encoder_units=64",
    "model.decoder_units=64",
    "model.dropout=0.0",
    "train.batch_size=16",
    "train.learning_rate=0.01",
    "train.tensorboard=false",
    "train.early_stopping_patience=null",
]


def tiny_config(corpus_dir, *overrides) -> Config:
    return Config.from_dict({}, [*TINY, f"data.dir={corpus_dir}", *overrides])


def quiet(_message):
    pass


def test_overfits_a_toy_corpus_and_translates_it_back(toy_corpus_dir, tmp_path):
    config = tiny_config(toy_corpus_dir, "train.epochs=40", "train.seed=3")
    result = train(config, tmp_path / "run", log=quiet)
    # From log(40) ~ 3.7 per token to near zero. (At this learning rate the last epochs are
    # noisy: with other seeds, or another rounding of the same maths, 42 to 48 of the 48
    # pairs come back exactly, so the bar is not one seed's golden value.)
    assert result.history[0]["loss"] > 2.5
    assert min(row["loss"] for row in result.history) < 0.1
    translator = Translator.load(tmp_path / "run")
    pairs = toy_pairs()
    translations = translator.translate([s for s, _ in pairs])
    exact = sum(out == target for out, (_, target) in zip(translations, pairs))
    assert exact >= 40, list(zip(translations, pairs))


def test_rerun_resumes_and_counts_epochs(toy_corpus_dir, tmp_path):
    run = tmp_path / "run"
    train(tiny_config(toy_corpus_dir, "train.epochs=2"), run, log=quiet)
    first = RunDir(run).finished_epochs()
    assert [row["epoch"] for row in first] == [0, 1]
    messages = []
    train(tiny_config(toy_corpus_dir, "train.epochs=2"), run, log=messages.append)
    assert any("already finished 2 epochs" in m for m in messages)
    result = train(tiny_config(toy_corpus_dir, "train.epochs=3"), run, log=quiet)
    assert [row["epoch"] for row in result.history] == [0, 1, 2]
    # The third epoch continued from the second: its loss is below the first epoch's.
    assert result.history[2]["loss"] < result.history[0]["loss"]


def test_a_run_without_its_training_state_is_not_silently_restarted(toy_corpus_dir, tmp_path):
    import shutil

    from keras_nmt.errors import UserError

    run = tmp_path / "run"
    train(tiny_config(toy_corpus_dir, "train.epochs=1"), run, log=quiet)
    shutil.rmtree(RunDir(run).backup)
    with pytest.raises(UserError, match="cannot be resumed"):
        train(tiny_config(toy_corpus_dir, "train.epochs=2"), run, log=quiet)
    assert len(RunDir(run).finished_epochs()) == 1


def test_another_model_config_in_the_same_run_dir_is_refused(toy_corpus_dir, tmp_path):
    import pytest

    from keras_nmt.errors import UserError

    run = tmp_path / "run"
    train(tiny_config(toy_corpus_dir, "train.epochs=1"), run, log=quiet)
    with pytest.raises(UserError, match="different model config.*decoder_units"):
        train(tiny_config(toy_corpus_dir, "model.decoder_units=32"), run, log=quiet)


def test_seeded_runs_are_reproducible(toy_corpus_dir, tmp_path):
    weights = []
    for name in ("a", "b"):
        config = tiny_config(toy_corpus_dir, "train.epochs=1", "model.dropout=0.2")
        train(config, tmp_path / name, log=quiet)
        weights.append(Translator.load(tmp_path / name).model.get_weights())
    for a, b in zip(*weights):
        np.testing.assert_array_equal(a, b)


def test_validation_bleu_is_logged_and_picks_the_best_checkpoint(toy_corpus_dir, tmp_path):
    config = tiny_config(
        toy_corpus_dir,
        "train.epochs=4",
        "train.seed=3",
        "train.validation_bleu_every=2",
        "train.validation_bleu_sentences=5",
        "train.best_metric=val_bleu",
        "train.tensorboard=true",
    )
    messages = []
    train(config, tmp_path / "run", log=messages.append)
    history = RunDir(tmp_path / "run").finished_epochs()
    evaluated = [not math.isnan(row["val_bleu"]) for row in history]
    assert evaluated == [False, True, False, True]
    assert all(0.0 <= row["val_bleu"] <= 100.0 for row in history[1::2])
    assert any("val_bleu" in message for message in messages)
    # The checkpoint is the epoch with the best val_bleu: its greedy BLEU on the same
    # 5 pairs is that value.
    from keras_nmt.evaluation import score

    best = max(row["val_bleu"] for row in history[1::2])
    translator = Translator.load(tmp_path / "run").with_decoding(beam_size=1)
    pairs = toy_pairs()[:5]
    hypotheses = translator.translate([s for s, _ in pairs])
    assert score(hypotheses, [t for _, t in pairs]).bleu == pytest.approx(best, abs=1e-3)
    # TensorBoard gets it next to the validation loss.
    events = list((tmp_path / "run" / "logs" / "validation").glob("events.*"))
    tags = {
        value.tag
        for path in events
        for event in tf.compat.v1.train.summary_iterator(str(path))
        for value in event.summary.value
    }
    assert {"epoch_bleu", "epoch_loss"} <= tags


def test_val_bleu_as_best_metric_needs_it_computed():
    from keras_nmt.errors import ConfigError

    with pytest.raises(ConfigError, match="validation_bleu_every"):
        Config.from_dict({}, ["train.best_metric=val_bleu"])


def test_learning_rate_decays_when_the_best_metric_stalls(toy_corpus_dir, tmp_path):
    # A learning rate too high to learn with: validation loss cannot improve for long.
    config = tiny_config(
        toy_corpus_dir,
        "train.epochs=5",
        "train.learning_rate=0.5",
        "train.learning_rate_decay=0.5",
        "train.learning_rate_patience=1",
    )
    history = train(config, tmp_path / "run", log=quiet).history
    rates = [row["learning_rate"] for row in history]
    assert rates[0] == pytest.approx(0.5)
    assert rates == sorted(rates, reverse=True) and rates[-1] < 0.5
    # It halves after each epoch whose val_loss is no better than the best before it.
    for before, after, row in zip(rates, rates[1:], history):
        best_so_far = min(r["val_loss"] for r in history[: history.index(row) + 1])
        improved = row["val_loss"] == best_so_far
        assert after == pytest.approx(before if improved else before / 2)
