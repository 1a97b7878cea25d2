"""Shared fixtures: tiny corpora and tiny models, built in a temporary directory."""

from __future__ import annotations

import os
import pathlib

import pytest

import keras_nmt  # noqa: F401  (sets the Keras backend)

# The seed of the shared toy training run; another one checks that no test leans on one
# trajectory (`KERAS_NMT_TEST_SEED=1 make test`).
TEST_SEED = int(os.environ.get("KERAS_NMT_TEST_SEED", "3"))

SHARED_DATA = pathlib.Path(__file__).resolve().parents[1].parent / "shared" / "data" / "multi30k"

# A toy translation task: reverse the words and uppercase them. Small enough to overfit.
TOY_WORDS = ["one", "two", "three", "four", "five", "six", "seven", "eight"]


def toy_pairs(n: int = 48) -> list[tuple[str, str]]:
    pairs = []
    for i in range(n):
        words = [TOY_WORDS[(i * 3 + k * 5) % len(TOY_WORDS)] for k in range(2 + i % 4)]
        pairs.append((" ".join(words), " ".join(w.upper() for w in reversed(words))))
    return pairs


def write_pairs(directory: pathlib.Path, prefix: str, pairs, src="en", tgt="de") -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{prefix}.{src}").write_text("".join(s + "\n" for s, _ in pairs), "utf-8")
    (directory / f"{prefix}.{tgt}").write_text("".join(t + "\n" for _, t in pairs), "utf-8")


@pytest.fixture
def toy_corpus_dir(tmp_path) -> pathlib.Path:
    directory = tmp_path / "corpus"
    pairs = toy_pairs()
    write_pairs(directory, "train", pairs)
    write_pairs(directory, "valid", pairs[:8])
    return directory


@pytest.fixture(scope="session")
def sp_models(tmp_path_factory) -> tuple[pathlib.Path, pathlib.Path]:
    """Tiny SentencePiece models for the toy task."""
    from keras_nmt.data.tokenizer import train_sentencepiece

    directory = tmp_path_factory.mktemp("sp")
    pairs = toy_pairs()
    source = train_sentencepiece((s for s, _ in pairs), directory / "source.model", 40)
    target = train_sentencepiece((t for _, t in pairs), directory / "target.model", 40)
    return source, target


requires_shared = pytest.mark.skipif(
    not SHARED_DATA.is_dir(), reason=f"{SHARED_DATA} is absent (../shared beside the repo)"
)


def _toy_corpus(directory: pathlib.Path) -> pathlib.Path:
    corpus = directory / "corpus"
    pairs = toy_pairs()
    write_pairs(corpus, "train", pairs)
    write_pairs(corpus, "valid", pairs[:8])
    return corpus


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory) -> pathlib.Path:
    """A tiny model trained on the toy task until it translates it (see
    `test_training.test_a_toy_run_learns_its_corpus_and_translates_it_back` for the bars
    that tests set on it)."""
    from keras_nmt.config import Config
    from keras_nmt.training.train import train
    from tests.test_training import TINY

    directory = tmp_path_factory.mktemp("trained")
    corpus = _toy_corpus(directory)
    # The learning rate halves after 2 epochs without a better validation loss, which keeps
    # the last epochs from bouncing off the minimum.
    config = Config.from_dict(
        {},
        [
            *TINY,
            f"data.dir={corpus}",
            "train.epochs=40",
            f"train.seed={TEST_SEED}",
            "train.learning_rate_decay=0.5",
            "train.learning_rate_patience=2",
        ],
    )
    train(config, directory / "run", log=lambda _message: None)
    return directory / "run"


@pytest.fixture(scope="session")
def one_epoch_run(tmp_path_factory):
    """A run directory after one epoch of the toy task (dropout, word dropout and layer
    normalization on, so that the tests of resuming, averaging, ensembles and exports that
    use it cover them), and its config. Tests that change a run directory copy it first."""
    import types

    from keras_nmt.config import Config
    from keras_nmt.training.train import train
    from tests.test_training import TINY

    directory = tmp_path_factory.mktemp("one_epoch")
    corpus = _toy_corpus(directory)
    config = Config.from_dict(
        {},
        [
            *TINY,
            f"data.dir={corpus}",
            "train.epochs=1",
            "model.dropout=0.2",
            "model.word_dropout=0.1",
            "model.layer_norm=true",
        ],
    )
    train(config, directory / "run", log=lambda _message: None)
    return types.SimpleNamespace(run_dir=directory / "run", config=config)


@pytest.fixture(scope="session")
def saved_model_export(trained_run, tmp_path_factory) -> pathlib.Path:
    """`trained_run` exported as a SavedModel: `BASE/toy/1`."""
    from keras_nmt.exporting.saved_model import export_saved_model
    from keras_nmt.inference.loading import load

    base = tmp_path_factory.mktemp("export")
    return export_saved_model(load(trained_run), base, "toy")
