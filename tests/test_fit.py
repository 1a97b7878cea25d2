"""Training through Keras's `fit`: `Seq2Seq.train_step`/`test_step` against a plain step on
the padded logits and against losses computed by hand, logs as per-token means, gradient
accumulation, saving, mixed precision, and mirrored replicas (in a subprocess:
`python -m tests.test_fit mirrored OUT.json`)."""

from __future__ import annotations

import csv
import functools
import json
import os
import pathlib
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_nmt.data.pipeline import group_micro_batches, teacher_forcing
from keras_nmt.models.losses import MaskedNLL
from keras_nmt.models.seq2seq import Seq2Seq
from keras_nmt.training.optimizer import FusedAdam

ROOT = pathlib.Path(__file__).resolve().parent.parent


def tiny_model(seed: int = 11) -> Seq2Seq:
    keras.utils.set_random_seed(seed)
    model = Seq2Seq(20, 20, embedding_dim=8, encoder_units=8, decoder_units=8, dropout=0.0)
    model.build()
    return model


def spread_out(model: Seq2Seq, seed: int = 0) -> Seq2Seq:
    """`model` with weights drawn from N(0, 0.5^2), wider than its initializers: an untrained
    model's token losses are all about log(V), these differ from batch to batch."""
    rng = np.random.default_rng(seed)
    model.set_weights([rng.normal(0.0, 0.5, w.shape).astype(w.dtype) for w in model.get_weights()])
    return model


def batch(source, labels):
    """`(inputs, labels)` as `pipeline.make_dataset` makes them, from PAD-padded `source` and
    `labels` lists (each label row ends with EOS)."""
    targets = tf.ragged.constant([[t for t in row if t != 0][:-1] for row in labels], tf.int32)
    inputs, labels = teacher_forcing(tf.constant(source, tf.int32), targets)
    return {**inputs, "decoder_input": inputs["decoder_input"].to_tensor()}, labels.to_tensor()


def batches():
    """Three batches of different shapes and target token counts (7, 4 and 9)."""
    return (
        batch([[4, 5, 6, 2], [7, 8, 2, 0]], [[5, 6, 7, 2], [9, 8, 2, 0]]),
        batch([[9, 2], [10, 2]], [[11, 2], [7, 2]]),
        batch([[12, 13, 2], [4, 2, 0], [6, 7, 2]], [[3, 4, 5, 2], [6, 2, 0, 0], [8, 9, 2, 0]]),
    )


def dataset(*stream) -> tf.data.Dataset:
    result = tf.data.Dataset.from_tensors(stream[0])
    for more in stream[1:]:
        result = result.concatenate(tf.data.Dataset.from_tensors(more))
    return result


class StepSums(keras.callbacks.Callback):
    """The running sums (`model.metrics`) after every training batch."""

    def __init__(self):
        super().__init__()
        self.sums = []

    def on_train_batch_end(self, batch, logs=None):
        self.sums.append([float(metric.result()) for metric in self.model.metrics])


def by_hand(model, stream, label_smoothing=0.0) -> dict[str, float]:
    """The logs as per-token means over `stream`, from the padded logits of `model(inputs)`
    with NumPy (not the packed, fused computation the steps use)."""
    loss = nll = correct = tokens = 0.0
    for inputs, labels in stream:
        logits = model(inputs).numpy().astype(np.float64)
        log_probs = logits - logits.max(-1, keepdims=True)
        log_probs -= np.log(np.exp(log_probs).sum(-1, keepdims=True))
        labels = labels.numpy()
        real = labels != 0
        token_nll = -np.take_along_axis(log_probs, labels[..., None], -1)[..., 0]
        smoothed = (1 - label_smoothing) * token_nll - label_smoothing * log_probs.mean(-1)
        loss += smoothed[real].sum()
        nll += token_nll[real].sum()
        correct += (logits.argmax(-1) == labels)[real].sum()
        tokens += real.sum()
    return {
        "loss": loss / tokens,
        "perplexity": float(np.exp(nll / tokens)),
        "token_accuracy": correct / tokens,
    }


def assert_logs(actual: dict, expected: dict, prefix: str = "") -> None:
    for name, value in expected.items():
        assert actual[prefix + name] == pytest.approx(value, rel=1e-5), prefix + name


OPTIMIZERS = {
    # SGD: a wrong gradient scale would show (Adam's steps hardly depend on it).
    "sgd": (lambda: keras.optimizers.SGD(0.5), 0.0),
    "sgd_clipped_smoothed": (lambda: keras.optimizers.SGD(0.5, global_clipnorm=0.05), 0.1),
    "fused_adam": (lambda: FusedAdam(0.01), 0.0),
}


def reference_steps(model, optimizer, stream, label_smoothing) -> list[list[float]]:
    """Plain optimizer steps on `stream`: the compiled loss `MaskedNLL` of the padded logits
    `model(inputs)` (not the packed, fused computation of `train_step`), its gradient,
    `optimizer.apply`; returns each step's sums (loss, NLL, correct, tokens) by hand."""
    loss_fn = MaskedNLL(label_smoothing)
    sums = []
    for inputs, labels in stream:
        logs = by_hand(model, [(inputs, labels)], label_smoothing)
        tokens = float(tf.reduce_sum(tf.cast(labels != 0, tf.float32)))
        nll = np.log(logs["perplexity"]) * tokens
        sums.append([logs["loss"] * tokens, nll, logs["token_accuracy"] * tokens, tokens])
        with tf.GradientTape() as tape:
            loss = loss_fn(labels, model(inputs, training=True))
        gradients = tape.gradient(loss, model.trainable_variables)
        optimizer.apply([tf.convert_to_tensor(g) for g in gradients], model.trainable_variables)
    return sums


def fit_sums(model, data, steps) -> np.ndarray:
    """Each `fit` step's sums (loss, NLL, correct, tokens), from the running metrics."""
    recorder = StepSums()
    model.fit(data, epochs=1, steps_per_epoch=steps, shuffle=False, verbose=0, callbacks=[recorder])
    return np.diff(np.array([[0.0] * 4, *recorder.sums]), axis=0)


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_fit_steps_equal_plain_steps_on_the_padded_logits(name):
    new_optimizer, smoothing = OPTIMIZERS[name]
    stream = batches()
    initial = tiny_model().get_weights()

    model = tiny_model()
    model.compile(optimizer=new_optimizer(), loss=MaskedNLL(smoothing))
    fitted = fit_sums(model, dataset(*stream), 3)

    reference = tiny_model()
    optimizer = new_optimizer()
    expected = reference_steps(reference, optimizer, stream, smoothing)

    np.testing.assert_allclose(fitted, expected, rtol=1e-5)
    assert fitted[:, 3].tolist() == [7.0, 4.0, 9.0]
    assert int(model.optimizer.iterations) == int(optimizer.iterations) == 3
    assert max(np.max(np.abs(w - i)) for w, i in zip(model.get_weights(), initial)) > 1e-2
    # Rounding only (Adam's normalisation makes it ~1e-6 in near-zero gradient entries).
    for a, b in zip(model.get_weights(), reference.get_weights()):
        np.testing.assert_allclose(a, b, atol=1e-5)


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_a_group_of_micro_batches_trains_as_one_batch_holding_them(name):
    """Gradient accumulation: groups of 2 micro-batches (7 + 4 and 9 + 7 target tokens, of
    different shapes) give the steps of the batches that concatenate them, token-weighted."""
    new_optimizer, smoothing = OPTIMIZERS[name]
    a, b, c = batches()
    initial = tiny_model().get_weights()

    model = tiny_model()
    model.compile(optimizer=new_optimizer(), loss=MaskedNLL(smoothing))
    grouped = fit_sums(model, group_micro_batches(dataset(a, b, c, a), 2), 2)

    reference = tiny_model()
    optimizer = new_optimizer()
    expected = reference_steps(reference, optimizer, [joined(a, b), joined(c, a)], smoothing)

    np.testing.assert_allclose(grouped, expected, rtol=1e-5)
    assert grouped[:, 3].tolist() == [11.0, 16.0]
    assert int(model.optimizer.iterations) == 2
    assert max(np.max(np.abs(w - i)) for w, i in zip(model.get_weights(), initial)) > 1e-2
    for x, y in zip(model.get_weights(), reference.get_weights()):
        np.testing.assert_allclose(x, y, atol=1e-5)


def joined(*parts):
    """One batch holding the rows of `parts`, padded to the longest."""
    width = max(int(part[1].shape[1]) for part in parts)
    width = max(width, *(int(part[0]["source"].shape[1]) for part in parts))

    def pad(x):
        return tf.pad(x, [[0, 0], [0, width - x.shape[1]]])

    inputs = {key: tf.concat([pad(part[0][key]) for part in parts], 0) for key in parts[0][0]}
    return inputs, tf.concat([pad(part[1]) for part in parts], 0)


def test_the_clipped_run_clips():
    """The clipped case above tests clipping: its first gradient is over twice as long as
    the clip norm, so a step that skipped or misplaced the clipping would differ."""
    model = tiny_model()
    inputs, labels = batches()[0]
    with tf.GradientTape() as tape:
        sums = model.token_sums(inputs, labels, 0.1, training=True)
        loss = sums.loss / sums.tokens
    norm = tf.linalg.global_norm(
        [tf.convert_to_tensor(g) for g in tape.gradient(loss, model.trainable_variables)]
    )
    assert float(norm) > 2 * 0.05


def test_epoch_logs_are_per_token_means_of_its_batches():
    a, b, _ = batches()
    model = spread_out(tiny_model())
    # A zero learning rate keeps the weights the logs were computed with.
    model.compile(optimizer=keras.optimizers.SGD(0.0), loss=MaskedNLL(0.1))
    history = model.fit(dataset(a, b), epochs=1, shuffle=False, verbose=0)
    expected = by_hand(model, [a, b], 0.1)
    assert_logs({name: values[0] for name, values in history.history.items()}, expected)
    # 7 and 4 tokens: the mean of the two batches' means is another number.
    per_batch = np.mean([by_hand(model, [x], 0.1)["loss"] for x in (a, b)])
    assert abs(per_batch - expected["loss"]) > 1e-3
    assert_logs(model.evaluate(dataset(a, b), verbose=0, return_dict=True), expected)
    # Keras's `compute_loss` runs the compiled MaskedNLL on the padded logits: the same loss.
    inputs, labels = a
    padded = float(model.compute_loss(y=labels, y_pred=model(inputs)))
    assert padded == pytest.approx(by_hand(model, [a], 0.1)["loss"], rel=1e-5)


def test_metrics_restart_at_every_epoch():
    a, b, _ = batches()
    model = spread_out(tiny_model())
    model.compile(optimizer=keras.optimizers.SGD(0.0))
    # One batch an epoch: epoch 1 trains on a, epoch 2 on b.
    history = model.fit(dataset(a, b), epochs=2, steps_per_epoch=1, shuffle=False, verbose=0)
    logs = [{name: values[epoch] for name, values in history.history.items()} for epoch in (0, 1)]
    assert_logs(logs[0], by_hand(model, [a]))
    assert_logs(logs[1], by_hand(model, [b]))
    assert by_hand(model, [a, b])["loss"] != pytest.approx(logs[1]["loss"], rel=1e-3)


def test_validation_logs_are_per_token_means_of_the_validation_batches():
    a, b, c = batches()
    model = tiny_model()
    model.compile(optimizer=keras.optimizers.SGD(0.5), loss=MaskedNLL(0.1))
    history = model.fit(
        dataset(a, b), validation_data=dataset(c, a), epochs=1, shuffle=False, verbose=0
    )
    expected = by_hand(model, [c, a], 0.1)
    assert_logs({name: values[0] for name, values in history.history.items()}, expected, "val_")
    assert_logs(model.evaluate(dataset(c, a), verbose=0, return_dict=True), expected)


def test_compile_refuses_what_the_steps_cannot_do():
    model = tiny_model()
    with pytest.raises(
        ValueError, match="loss: expected None or a keras_nmt.models.losses.MaskedNLL"
    ):
        model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    with pytest.raises(ValueError, match="metrics: not supported"):
        model.compile(optimizer="sgd", metrics=["accuracy"])
    # XLA cannot compile the decoder loop: jit_compile stays off (what "auto" gives on a GPU).
    with pytest.warns(UserWarning, match="doesn't support `jit_compile=True`"):
        model.compile(optimizer="sgd", jit_compile=True)
    assert model.jit_compile is False


def test_a_keras_users_route(sp_models, tmp_path):
    """Batches from the project's pipeline, Keras's compile/fit with an Adam and a standard
    callback, then `.keras` saving and loading."""
    from keras_nmt.config import DataConfig, TrainConfig
    from keras_nmt.data.corpus import ParallelCorpus
    from keras_nmt.data.pipeline import count_batches, make_dataset, tokenized_corpus
    from keras_nmt.data.tokenizer import Tokenizer
    from tests.conftest import toy_pairs, write_pairs

    write_pairs(tmp_path, "train", toy_pairs())
    write_pairs(tmp_path, "valid", toy_pairs()[:8])
    source, target = (Tokenizer.load(path) for path in sp_models)

    def batches_of(prefix):
        corpus = ParallelCorpus.from_prefix(tmp_path, prefix, "en", "de")
        tokenized = tokenized_corpus(corpus, source, target)
        batches = make_dataset(
            tokenized, DataConfig(dir=str(tmp_path)), TrainConfig(batch_size=8), shuffle=False
        )
        # Length bucketing hides the batch count; without it, fit learns it by running out.
        return batches.apply(tf.data.experimental.assert_cardinality(count_batches(batches)))

    model = Seq2Seq(
        source.vocab_size,
        target.vocab_size,
        embedding_dim=16,
        encoder_units=16,
        decoder_units=16,
        dropout=0.1,
    )
    model.compile(optimizer=keras.optimizers.Adam(0.01, global_clipnorm=5.0), loss=MaskedNLL(0.1))
    initial = model.get_weights()
    log = tmp_path / "history.csv"
    model.fit(
        batches_of("train"),
        validation_data=batches_of("valid"),
        epochs=2,
        shuffle=False,
        verbose=0,
        callbacks=[keras.callbacks.CSVLogger(str(log))],
    )

    with log.open() as file:
        rows = list(csv.DictReader(file))
    names = ["loss", "perplexity", "token_accuracy"]
    assert set(rows[0]) == {"epoch", *names, *(f"val_{name}" for name in names)}
    assert [row["epoch"] for row in rows] == ["0", "1"]
    for row in rows:
        values = {name: float(value) for name, value in row.items()}
        assert all(np.isfinite(value) for value in values.values())
        assert values["perplexity"] > 1.0 and 0.0 <= values["token_accuracy"] <= 1.0
    assert max(np.max(np.abs(w - i)) for w, i in zip(model.get_weights(), initial)) > 1e-3

    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    assert type(loaded) is Seq2Seq and loaded.get_config() == model.get_config()
    assert loaded.loss.label_smoothing == 0.1
    assert int(loaded.optimizer.iterations) == int(model.optimizer.iterations) > 0
    inputs, _ = next(iter(batches_of("valid")))
    np.testing.assert_array_equal(loaded(inputs).numpy(), model(inputs).numpy())


def test_mixed_precision_fit_step_sees_float32_logits(monkeypatch):
    from keras_nmt.models import seq2seq as model_module

    seen = []

    def spy(labels, logits, label_smoothing=0.0):
        seen.append(logits.dtype)
        return token_losses(labels, logits, label_smoothing)

    token_losses = model_module.token_losses
    monkeypatch.setattr(model_module, "token_losses", spy)
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        model = tiny_model()
    finally:
        keras.config.set_dtype_policy("float32")
    assert model.decoder.cell.compute_dtype == "bfloat16"
    model.compile(optimizer=keras.optimizers.SGD(0.5))
    initial = model.get_weights()
    a, b, _ = batches()
    history = model.fit(dataset(a, b), epochs=1, shuffle=False, verbose=0)
    assert seen and set(seen) == {tf.float32}
    assert np.isfinite(history.history["loss"][0])
    assert {variable.dtype for variable in model.trainable_variables} == {"float32"}
    assert max(np.max(np.abs(w - i)) for w, i in zip(model.get_weights(), initial)) > 1e-2


def test_mirrored_over_two_devices_equals_one_device(tmp_path):
    out = tmp_path / "result.json"
    done = subprocess.run(
        [sys.executable, "-m", "tests.test_fit", "mirrored", str(out)],
        cwd=ROOT,
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["replicas"] == 2
    assert result["keras_build_fails"], (
        "Keras's fit now builds a model from per-replica batches of different shapes: "
        "Seq2Seq._maybe_symbolic_build is no longer needed"
    )
    assert result["replica_tokens"] == [6.0, 10.0]
    assert set(result["runs"]) == {
        "global/sgd",
        "per_replica/sgd",
        "per_replica/loss_scaled_clipped",
        "per_replica/fused_adam",
    }
    for name, run in result["runs"].items():
        np.testing.assert_allclose(run["mirrored_logs"], run["single_logs"], rtol=1e-5)
        assert run["moved"] > 1e-2, name
        assert run["difference"] < 1e-6, name
        assert run["device_spread"] == 0.0, name


def weight_distances(initial, single, mirrored) -> dict[str, float]:
    """How far one device's weights `single` moved from `initial` (`moved`: the test is not
    vacuous) and how far the mirrored run's ended from them (`difference`): max-abs."""
    return {
        "moved": max(float(np.max(np.abs(w - i))) for w, i in zip(single, initial)),
        "difference": max(float(np.max(np.abs(w - m))) for w, m in zip(single, mirrored)),
    }


def keras_build_fails(strategy, per_replica) -> bool:
    """Whether `fit` fails on `per_replica` (batches of different shapes) with Keras's own
    `_maybe_symbolic_build` in place of `Seq2Seq`'s."""
    with strategy.scope():
        model = tiny_model()
        model.compile(optimizer=keras.optimizers.SGD(0.5))
    model._maybe_symbolic_build = functools.partial(keras.Model._maybe_symbolic_build, model)
    try:
        model.fit(per_replica, epochs=1, steps_per_epoch=1, verbose=0)
    except tf.errors.InvalidArgumentError:  # AddN of the replicas' batches: shapes differ
        return True
    return False


def mirrored(out: str) -> None:
    """Three `fit` steps on one device and mirrored over 2 logical CPU devices, on the same
    global batches, half of each (6 target tokens) to one replica, half (10) to the other:
    - `global`: Keras splits each global batch between the replicas;
    - `per_replica`: each replica gets its own batch, of another shape than the other's
      (`distribute_datasets_from_function`, as `keras-nmt train` feeds length-bucketed
      batches); one device trains on the batch holding both;
    Writes both runs' per-step logs (then `evaluate`'s) and how far their weights ended
    apart. SGD without clipping (the global token mean), and with a clip norm that clips every
    step (clipping of the global gradient, which Keras's optimizer alone would apply to each
    replica's part) inside a LossScaleOptimizer (clipping between unscaling and rescaling)."""
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    a = batch([[4, 5, 6, 7, 2], [8, 9, 2, 0, 0]], [[5, 6, 7, 2], [9, 2, 0, 0]])
    b = batch([[10, 11, 2], [12, 2, 0]], [[11, 12, 13, 14, 2], [6, 6, 7, 8, 2]])
    both = joined(a, b)
    initial = tiny_model().get_weights()

    class BatchLogs(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.logs = []

        def on_train_batch_end(self, batch, logs=None):
            self.logs.append([float(logs[name]) for name in sorted(logs)])

    def run(strategy, optimizer, data):
        with strategy.scope():
            model = tiny_model()
            model.set_weights(initial)
            model.compile(optimizer=optimizer())
        recorder = BatchLogs()
        model.fit(data, epochs=1, steps_per_epoch=3, verbose=0, callbacks=[recorder])
        evaluated = model.evaluate(dataset(both), verbose=0, return_dict=True)
        recorder.logs.append([evaluated[name] for name in sorted(evaluated)])
        copies = [strategy.experimental_local_results(v.value) for v in model.variables]
        spread = max(float(np.max(np.abs(c[0] - c[-1]))) for c in copies)
        return recorder.logs, model.get_weights(), spread

    single = tf.distribute.get_strategy()
    mirrored_strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    per_replica = mirrored_strategy.distribute_datasets_from_function(
        lambda _: dataset(a, b).repeat()
    )
    data = {
        # (one device's batches, the mirrored run's)
        "global": (dataset(both).repeat(), dataset(both).repeat()),
        "per_replica": (dataset(both).repeat(), per_replica),
    }
    optimizers = {
        "sgd": lambda: keras.optimizers.SGD(0.5),
        # Clipping inside a LossScaleOptimizer covers plain clipping too: the step unscales the
        # global gradient, clips it, and scales it back.
        "loss_scaled_clipped": lambda: keras.optimizers.LossScaleOptimizer(
            keras.optimizers.SGD(0.5, global_clipnorm=0.05)
        ),
        # The training optimizer: its kernel must update each device's copy.
        "fused_adam": lambda: FusedAdam(0.01),
    }
    runs = {}
    for data_name, (single_data, mirrored_data) in data.items():
        for name, optimizer in optimizers.items():
            if data_name != "per_replica" and name != "sgd":
                continue
            single_logs, single_weights, _ = run(single, optimizer, single_data)
            mirrored_logs, mirrored_weights, spread = run(
                mirrored_strategy, optimizer, mirrored_data
            )
            runs[f"{data_name}/{name}"] = {
                "single_logs": single_logs,
                "mirrored_logs": mirrored_logs,
                "device_spread": spread,
                **weight_distances(initial, single_weights, mirrored_weights),
            }
    result = {
        "keras_build_fails": keras_build_fails(mirrored_strategy, per_replica),
        "replicas": mirrored_strategy.num_replicas_in_sync,
        "replica_tokens": [float(tf.reduce_sum(tf.cast(x[1] != 0, tf.float32))) for x in (a, b)],
        "runs": runs,
    }
    pathlib.Path(out).write_text(json.dumps(result))


if __name__ == "__main__":
    if sys.argv[1:2] != ["mirrored"] or len(sys.argv) != 3:
        sys.exit("usage: python -m tests.test_fit mirrored OUT.json")
    mirrored(sys.argv[2])
