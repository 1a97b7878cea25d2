import dataclasses
import pathlib

import pytest

from keras_nmt.config import Config
from keras_nmt.errors import ConfigError


def test_defaults_are_valid_and_round_trip(tmp_path):
    config = Config()
    path = tmp_path / "config.yaml"
    config.save(path)
    assert Config.from_yaml(path) == config


def test_yaml_and_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("model:\n  attention: bahdanau\ntrain:\n  epochs: 3\n")
    config = Config.from_yaml(path, ["train.epochs=7", "data.dir=/x/y", "model.dropout=0"])
    assert config.model.attention == "bahdanau"
    assert config.train.epochs == 7
    assert config.data.dir == "/x/y"
    assert config.model.dropout == 0.0 and isinstance(config.model.dropout, float)
    assert config.replace(["decode.max_length=9"]).decode.max_length == 9
    # Exponent notation without a dot is a string to PyYAML (YAML 1.1), a number here.
    path.write_text("train:\n  learning_rate: 1e-4\n")
    assert Config.from_yaml(path, ["train.clip_norm=2E+1"]).train.learning_rate == 1e-4
    assert Config.from_yaml(path, ["train.clip_norm=2E+1"]).train.clip_norm == 20.0
    with pytest.raises(ConfigError, match="train.learning_rate: expected a number, got 'e4'"):
        config.replace(["train.learning_rate=e4"])


def test_with_section_checks_values_as_from_dict_does():
    config = Config()
    changed = config.with_section("decode", beam_size=3, length_penalty=1)
    assert changed.decode == dataclasses.replace(config.decode, beam_size=3, length_penalty=1.0)
    assert isinstance(changed.decode.length_penalty, float)
    assert changed.model == config.model and changed.train == config.train
    assert changed == config.replace(["decode.beam_size=3", "decode.length_penalty=1"])
    for section, values, message in [
        ("decode", {"beam_size": 0}, "decode.beam_size: expected a value >= 1, got 0"),
        ("decode", {"n_best": 9}, "decode.n_best: expected at most decode.beam_size (5)"),
        ("decode", {"beam": 3}, "decode.beam: unknown key"),
        ("decoding", {"beam_size": 3}, "unknown section 'decoding'"),
    ]:
        with pytest.raises(ConfigError) as info:
            config.with_section(section, **values)
        assert message in str(info.value)


@pytest.mark.parametrize(
    "raw, message",
    [
        ({"model": {"atention": "dot"}}, "model.atention: unknown key"),
        ({"modle": {}}, "unknown section 'modle'"),
        ({"model": {"attention": "cosine"}}, "model.attention: expected one of"),
        ({"train": {"epochs": 0}}, "train.epochs: expected a value >= 1, got 0"),
        ({"train": {"epochs": "ten"}}, "train.epochs: expected an integer, got 'ten'"),
        ({"train": {"learning_rate": 0}}, "train.learning_rate: expected a value > 0.0"),
        ({"model": {"bidirectional": "yes"}}, "model.bidirectional: expected true or false"),
        ({"model": {"dropout": 1.5}}, "model.dropout: expected a value <= 0.99, got 1.5"),
        ({"model": {"encoder_units": 255}}, "expected an even number, got 255"),
        (
            {"model": {"bridge": "sum", "encoder_units": 256, "decoder_units": 256}},
            "expected decoder_units == 128",
        ),
        ({"model": {"attention": "dot", "decoder_units": 128}}, "encoder_units == decoder_units"),
        (
            {"model": {"rnn_type": "gru", "layer_norm": True}},
            "model.layer_norm: only the LSTM cell is layer-normalized, got rnn_type 'gru'",
        ),
        ({"train": []}, "train: expected a mapping"),
        ({"decode": {"beam_size": 2, "n_best": 3}}, "decode.n_best: expected at most"),
        (
            {"train": {"average_last_epochs": 3, "average_best_epochs": 3}},
            "train.average_best_epochs: average either the last epochs or the best ones",
        ),
        ([1, 2], "expected a mapping of sections"),
    ],
)
def test_bad_configs_name_key_expected_and_given(raw, message):
    with pytest.raises(ConfigError, match=None) as info:
        Config.from_dict(raw)
    assert message in str(info.value)


@pytest.mark.parametrize("override", ["train.epochs", "epochs=3", "nope.x=1"])
def test_bad_overrides(override):
    with pytest.raises(ConfigError, match="override"):
        Config.from_dict({}, [override])


def test_bad_yaml_and_missing_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("model: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        Config.from_yaml(path)
    with pytest.raises(ConfigError, match="config file not found"):
        Config.from_yaml(tmp_path / "missing.yaml")


def test_repository_configs_are_valid():
    configs = sorted((pathlib.Path(__file__).parents[1] / "configs").glob("*.yaml"))
    assert configs
    for path in configs:
        Config.from_yaml(path)
