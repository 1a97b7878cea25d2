"""Training: learning a toy task, resuming, reproducibility, callbacks on scripted metrics."""

import io
import itertools
import math
import re
import shutil

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_nmt.config import Config
from keras_nmt.data.tokenizer import Tokenizer
from keras_nmt.errors import ConfigError, UserError
from keras_nmt.evaluation.bleu import score
from keras_nmt.inference.loading import load
from keras_nmt.inference.translator import Translator
from keras_nmt.run_dir import RunDir
from keras_nmt.special_ids import UNK_ID
from keras_nmt.training.callbacks import TrainingProgress
from keras_nmt.training.optimizer import make_optimizer
from keras_nmt.training.train import build_model, callbacks, train
from tests.conftest import TOY_WORDS, toy_pairs, write_pairs

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


def test_a_toy_run_learns_its_corpus_and_translates_it_back(trained_run):
    """`trained_run` (conftest) is the one real learning run of the default suite, and other
    tests rely on it translating. Its bars leave room for seeds and rounding (oneDNN, for
    one, rounds differently): before training the loss is about log(40) ~ 3.7 per token (40
    target pieces), so its first epoch's is above 2.5; a run that learns the task goes well
    below 0.3; the toy corpus is 8 sentences 6 times over, so 30 of the 48 pairs exact
    allows three sentences wrong."""
    history = RunDir(trained_run).finished_epochs()
    assert history[0]["loss"] > 2.5
    assert min(row["loss"] for row in history) < 0.3
    translator = load(trained_run)
    pairs = toy_pairs()
    translations = translator.translate([s for s, _ in pairs])
    exact = sum(out == target for out, (_, target) in zip(translations, pairs))
    assert exact >= 30, list(zip(translations, pairs))


def test_rerun_resumes_counts_epochs_and_adds_up_minutes(toy_corpus_dir, tmp_path):
    run = tmp_path / "run"
    train(tiny_config(toy_corpus_dir, "train.epochs=1"), run, log=quiet)
    first = RunDir(run).finished_epochs()
    assert [row["epoch"] for row in first] == [0]
    steps_per_epoch = _optimizer_steps(run)
    messages = []
    train(tiny_config(toy_corpus_dir, "train.epochs=1"), run, log=messages.append)
    assert any("already finished 1 epochs" in m for m in messages)
    result = train(tiny_config(toy_corpus_dir, "train.epochs=2"), run, log=quiet)
    assert [row["epoch"] for row in result.history] == [0, 1]
    # The second epoch continued the first: the optimizer kept counting its steps.
    assert _optimizer_steps(run) == 2 * steps_per_epoch
    assert result.history[1]["training_minutes"] > first[0]["training_minutes"] > 0


def _optimizer_steps(run) -> int:
    """The step number of the run's latest training-state checkpoint."""
    return max(int(path.name.split("-")[1]) for path in RunDir(run).backup.glob("ckpt-*"))


def test_a_run_without_its_training_state_is_not_silently_restarted(one_epoch_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(one_epoch_run.run_dir, run)
    shutil.rmtree(RunDir(run).backup)
    with pytest.raises(UserError, match="cannot be resumed"):
        train(one_epoch_run.config.replace(["train.epochs=2"]), run, log=quiet)
    assert len(RunDir(run).finished_epochs()) == 1


def test_another_model_config_in_the_same_run_dir_is_refused(one_epoch_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(one_epoch_run.run_dir, run)
    with pytest.raises(UserError, match="different model config.*decoder_units"):
        train(one_epoch_run.config.replace(["model.decoder_units=32"]), run, log=quiet)


def test_seeded_runs_are_reproducible(one_epoch_run, tmp_path):
    """Two runs of the same config (dropout on, so its RNG is seeded too) on the same machine
    end with identical weights."""
    train(one_epoch_run.config, tmp_path / "again", log=quiet)
    first = load(one_epoch_run.run_dir).model.get_weights()
    again = load(tmp_path / "again").model.get_weights()
    for a, b in zip(first, again):
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
    best = max(row["val_bleu"] for row in history[1::2])
    translator = load(tmp_path / "run").with_decoding(beam_size=1)
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
    with pytest.raises(ConfigError, match="validation_bleu_every"):
        Config.from_dict({}, ["train.best_metric=val_bleu"])


# A scripted validation loss: the best values are at epochs 1 and 3; then 3 epochs without
# a better one. (No training: the callbacks see only these numbers.)
SCRIPTED_VAL_LOSS = [3.0, 2.0, 2.5, 1.0, 1.2, 1.1, 1.3, 1.4, 0.5]


def test_callbacks_decay_the_rate_keep_the_best_weights_and_stop_on_a_scripted_metric(tmp_path):
    """The callbacks `train` sets up from the config (learning-rate decay on plateau, early
    stopping, the best checkpoint, the history), driven epoch by epoch as `fit` drives them,
    with a scripted validation loss instead of a training run."""
    config = Config.from_dict(
        {},
        [
            *TINY,
            "train.learning_rate=0.01",
            "train.learning_rate_decay=0.5",
            "train.learning_rate_patience=1",
            "train.early_stopping_patience=3",
            f"train.epochs={len(SCRIPTED_VAL_LOSS)}",
        ],
    )
    model = build_model(config, 40, 40)
    model.compile(optimizer=make_optimizer(config.train))
    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    messages = []
    found = callbacks(
        config, run, model, lambda: 0.0, (None, None), "validation", True, messages.append
    )
    callback_list = keras.callbacks.CallbackList(
        found, model=model, epochs=config.train.epochs, steps=1
    )
    marker = model.trainable_variables[0]  # set to the epoch number: which epoch was saved
    rates = []
    callback_list.on_train_begin()
    for epoch, val_loss in enumerate(SCRIPTED_VAL_LOSS):
        callback_list.on_epoch_begin(epoch)
        marker.assign(tf.fill(marker.shape, float(epoch)))
        rate = float(model.optimizer.learning_rate.numpy())
        rates.append(rate)
        logs = {"loss": 1.0, "learning_rate": rate, "val_loss": val_loss}
        callback_list.on_epoch_end(epoch, logs)
        if model.stop_training:
            break
    callback_list.on_train_end()
    # Halved after each epoch that did not beat the best (patience 1): after epochs 2, 4, 5.
    assert rates == pytest.approx([0.01, 0.01, 0.01, 0.005, 0.005, 0.0025, 0.00125])
    # Early stopping: epochs 4, 5 and 6 brought nothing better than epoch 3's 1.0.
    assert len(rates) == 7 and model.stop_training
    # The saved weights are epoch 3's, the best.
    marker.assign(tf.zeros(marker.shape))
    model.load_weights(run.weights)
    np.testing.assert_array_equal(marker.numpy(), 3.0)
    history = run.finished_epochs()
    assert [row["val_loss"] for row in history] == SCRIPTED_VAL_LOSS[:7]
    assert [row["learning_rate"] for row in history] == pytest.approx(rates)
    assert len([m for m in messages if m.startswith("epoch ")]) == 7


def test_progress_bar_shows_steps_loss_tokens_per_second_and_resumes_mid_epoch():
    tokens = {"count": 0.0}
    screen = io.StringIO()
    progress = TrainingProgress(lambda: tokens["count"], file=screen, min_interval=0.0)
    progress.set_params({"epochs": 2, "steps": 10})
    progress.on_epoch_begin(0)
    for step in range(10):
        progress.on_train_batch_begin(step)
        tokens["count"] += 100.0
        progress.on_train_batch_end(step, {"loss": 2.0 - step / 10})
    drawn = screen.getvalue()
    assert "epoch 1/2" in drawn and "10/10" in drawn and "loss 1.1000" in drawn
    assert re.search(r"[\d,]+ tok/s", drawn)
    progress.on_epoch_end(0)
    # A run resumed at step 6 of epoch 2: the bar starts there, not at 0.
    screen.seek(0), screen.truncate()
    progress.on_epoch_begin(1)
    progress.on_train_batch_begin(6)
    progress.on_train_batch_end(6, {"loss": 0.5})
    drawn = screen.getvalue()
    assert "epoch 2/2" in drawn and "7/10" in drawn and "0/10" not in drawn
    progress.on_train_end()


def copy_task(offset: int, count: int) -> list[tuple[str, str]]:
    """Another toy task over the same words: uppercase them in the same order. Distinct
    three-word sentences, `count` of them from every 4th permutation starting at `offset`."""
    sentences = [" ".join(words) for words in itertools.permutations(TOY_WORDS, 3)][offset::4]
    return [(s, s.upper()) for s in sentences[:count]]


def test_fine_tuning_starts_from_a_run_learns_the_new_data_and_leaves_the_run_untouched(
    trained_run, tmp_path
):
    corpus = tmp_path / "copy"
    held_out = copy_task(1, 24)
    write_pairs(corpus, "train", copy_task(0, 84))
    write_pairs(corpus, "valid", held_out)
    files = {path: path.read_bytes() for path in trained_run.rglob("*") if path.is_file()}
    saved = Config.from_yaml(RunDir(trained_run).config)
    tuned = saved.replace([f"data.dir={corpus}", "train.epochs=8", "train.average_last_epochs=0"])

    # It starts from the run's weights: one step at a negligible learning rate keeps them.
    first = tmp_path / "first_step"
    messages = []
    train(tuned.replace(["train.max_steps=1", "train.learning_rate=1e-9"]), first,
          log=messages.append, init_from=trained_run)  # fmt: skip
    assert any("starting from the weights of" in message for message in messages)
    # A fresh optimizer: its one step is step 1 (the run's own count would be far higher).
    assert [p.name for p in RunDir(first).backup.iterdir()] == ["ckpt-000000001"]
    start = Translator.load_run_dir(first).model.get_weights()
    for a, b in zip(start, Translator.load_run_dir(trained_run).model.get_weights()):
        np.testing.assert_allclose(a, b, atol=1e-6)

    def perplexity(run) -> float:
        total, tokens = Translator.load_run_dir(run).reference_nll(*zip(*held_out))
        return math.exp(total / tokens)

    train(tuned, tmp_path / "tuned", log=quiet, init_from=trained_run)
    before, after = perplexity(trained_run), perplexity(tmp_path / "tuned")
    assert after < before / 2, (before, after)  # the reversing model copies badly at first
    assert {path: path.read_bytes() for path in files} == files
    assert sorted(p for p in trained_run.rglob("*") if p.is_file()) == sorted(files)
    with pytest.raises(UserError, match=r"another model config \(model.decoder_units: 64 -> 32"):
        train(tuned.replace(["model.decoder_units=32"]), tmp_path / "other", log=quiet,
              init_from=trained_run)  # fmt: skip


def test_several_training_corpora_share_the_sentencepiece_models_and_the_epoch(tmp_path):
    corpus = tmp_path / "corpus"
    write_pairs(corpus, "a", toy_pairs())
    write_pairs(corpus, "b", [("zebra quiz", "ZEBRA QUIZ")] * 24)  # letters a has not
    write_pairs(corpus, "valid", toy_pairs()[:8])
    # a (48 pairs) is over the memory cache's limit, b (24) is not.
    settings = ["data.train=[a, b]", "data.train_weights=[2, 1]", "data.memory_cache_max_pairs=30"]
    messages = []
    result = train(tiny_config(corpus, *settings, "train.epochs=1"), tmp_path / "run",
                   log=messages.append)  # fmt: skip
    assert sum(m.startswith("training corpus:") for m in messages) == 2
    assert result.train_counts.kept == len(toy_pairs()) + 24
    run = RunDir(tmp_path / "run")
    target = Tokenizer.load(run.target_model)
    assert UNK_ID not in target.tokenize(tf.constant(["ZEBRA QUIZ"])).flat_values.numpy()
    assert np.isfinite(result.history[-1]["loss"])
    (index,) = run.cache.glob("*.index")
    assert index.name.startswith("train0-worker0-") and not list(run.cache.glob("train1*"))
    written = index.stat().st_mtime_ns
    # The next epoch, in a new process's place, reads the cache the first pass wrote.
    train(tiny_config(corpus, *settings, "train.epochs=2"), run.path, log=quiet)
    assert [p.name for p in run.cache.glob("*.index")] == [index.name]
    assert index.stat().st_mtime_ns == written


@pytest.mark.parametrize("killed_after", [2, 4, 6])
def test_decay_and_early_stopping_count_on_in_a_resumed_run(tmp_path, killed_after):
    """The callbacks of the test above, driven through the scripted losses in one run, and in
    a run killed after `killed_after` epochs then resumed as a new process resumes it: new
    callbacks, the optimizer's rate restored, history.csv on disk. Both halve the rate after
    the same epochs and stop after the same one."""
    config = Config.from_dict(
        {},
        [
            *TINY,
            "train.learning_rate_decay=0.5",
            "train.learning_rate_patience=1",
            "train.early_stopping_patience=3",
            f"train.epochs={len(SCRIPTED_VAL_LOSS)}",
        ],
    )

    def drive(run, model, first, last):
        found = callbacks(config, run, model, lambda: 0.0, (None, None), "validation", True, quiet)
        callback_list = keras.callbacks.CallbackList(found, model=model, epochs=last, steps=1)
        rates = []
        model.stop_training = False
        callback_list.on_train_begin()
        for epoch in range(first, last):
            callback_list.on_epoch_begin(epoch)
            rates.append(float(model.optimizer.learning_rate.numpy()))
            logs = {"loss": 1.0, "learning_rate": rates[-1], "val_loss": SCRIPTED_VAL_LOSS[epoch]}
            callback_list.on_epoch_end(epoch, logs)
            if model.stop_training:
                break
        callback_list.on_train_end()
        return rates

    def new_model(rate=None):
        model = build_model(config, 40, 40)
        model.compile(optimizer=make_optimizer(config.train))
        if rate is not None:
            model.optimizer.learning_rate = rate
        return model

    whole = RunDir(tmp_path / "whole")
    whole.path.mkdir()
    expected = drive(whole, new_model(), 0, len(SCRIPTED_VAL_LOSS))
    resumed = RunDir(tmp_path / "resumed")
    resumed.path.mkdir()
    first = new_model()
    before = drive(resumed, first, 0, killed_after)
    rate = float(first.optimizer.learning_rate.numpy())
    after = drive(resumed, new_model(rate), killed_after, len(SCRIPTED_VAL_LOSS))
    assert before + after == pytest.approx(expected)
    assert len(expected) == 7  # stopped early, after the 7th epoch
