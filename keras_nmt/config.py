"""The one validated configuration object.

A config has five sections, `data`, `model`, `train`, `decode` and `export`, each a frozen
dataclass whose fields hold the defaults. `Config.from_yaml(path, overrides)` reads a YAML
file, applies `section.key=value` overrides (values parsed as YAML scalars), checks every
key and value, and raises `ConfigError` naming the key, what was expected and what was given.
"""

from __future__ import annotations

import dataclasses
import pathlib
import re
import typing
from types import UnionType
from typing import Any

import yaml

from keras_nmt.errors import ConfigError

# The allowed values of the fields that take one of a few, each listed once: the fields below
# are validated against them, and any other list of the same values (the CLI's `choices`, an
# error message) is read from here.
SENTENCEPIECE_MODEL_TYPES = ("unigram", "bpe")
RNN_TYPES = ("lstm", "gru")
ATTENTIONS = ("bahdanau", "dot", "general", "concat")
BRIDGES = ("project", "sum", "zeros")
BATCH_TYPES = ("sentences", "tokens")
BEST_METRICS = ("val_loss", "val_bleu")
STRATEGIES = ("default", "mirrored", "multi_worker")
MIXED_PRECISIONS = ("none", "bfloat16", "float16")
# `keras-nmt export --format tflite --quantize` (an export option, not a config key).
TFLITE_QUANTIZATIONS = ("none", "float16", "dynamic_range")


def _choice(*values: str) -> dict:
    return {"choices": values}


def _range(low: float | None = None, high: float | None = None, *, open_low=False) -> dict:
    return {"low": low, "high": high, "open_low": open_low}


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """Where the corpus is and how it is tokenized and filtered.

    `train`, `valid` and `test` are file prefixes inside `dir`: a prefix `train` names
    `dir/train.<source_lang>` and `dir/train.<target_lang>` (each plain or `.gz`), or else
    one TSV file `dir/train.tsv` (or `.tsv.gz`) with `source<TAB>target` lines.

    `train` may be a list of prefixes: several training corpora. Without `train_weights`
    an epoch reads each of their pairs once, shuffled together; with `train_weights` (one
    positive number per corpus) each batch's pairs are drawn from the corpora in proportion
    to the weights, and an epoch is as many steps as one pass over all the corpora together
    would take. SentencePiece models are trained on all of them (a random sample of
    `sentencepiece_max_sentences` sentences a side); validation reads `valid`.

    A training corpus is tokenized once and cached: in memory up to `memory_cache_max_pairs`
    pairs, above that in a file under the run directory's `cache/` (`corpus_cache`), so that
    memory does not grow with the corpus; 0 caches every training corpus in a file.
    """

    dir: str = "../shared/data/multi30k"
    source_lang: str = "en"
    target_lang: str = "de"
    train: str | list[str] = "train"
    train_weights: list[float] | None = dataclasses.field(
        default=None, metadata=_range(0.0, open_low=True)
    )
    valid: str | None = "val"
    test: str | None = "test_2017_mscoco"
    source_vocab_size: int = dataclasses.field(default=8000, metadata=_range(8))
    target_vocab_size: int = dataclasses.field(default=8000, metadata=_range(8))
    shared_vocab: bool = False
    sentencepiece_model_type: str = dataclasses.field(
        default="unigram", metadata=_choice(*SENTENCEPIECE_MODEL_TYPES)
    )
    sentencepiece_max_sentences: int = dataclasses.field(default=1_000_000, metadata=_range(1))
    memory_cache_max_pairs: int = dataclasses.field(default=1_000_000, metadata=_range(0))
    max_source_length: int = dataclasses.field(default=100, metadata=_range(1))
    max_target_length: int = dataclasses.field(default=100, metadata=_range(1))


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """The attention encoder-decoder's architecture."""

    rnn_type: str = dataclasses.field(default="lstm", metadata=_choice(*RNN_TYPES))
    embedding_dim: int = dataclasses.field(default=256, metadata=_range(1))
    encoder_layers: int = dataclasses.field(default=1, metadata=_range(1))
    encoder_units: int = dataclasses.field(default=256, metadata=_range(1))
    bidirectional: bool = True
    decoder_layers: int = dataclasses.field(default=1, metadata=_range(1))
    decoder_units: int = dataclasses.field(default=256, metadata=_range(1))
    attention: str = dataclasses.field(default="general", metadata=_choice(*ATTENTIONS))
    attention_units: int | None = dataclasses.field(default=None, metadata=_range(1))
    input_feeding: bool = True
    bridge: str = dataclasses.field(default="project", metadata=_choice(*BRIDGES))
    dropout: float = dataclasses.field(default=0.2, metadata=_range(0.0, 0.99))
    # In training, the probability of zeroing a whole token's embedding (every feature at
    # once), on the source and on the decoder's input: word dropout (Sennrich and Zhang, 2019).
    word_dropout: float = dataclasses.field(default=0.0, metadata=_range(0.0, 0.99))
    tie_embeddings: bool = False
    # Layer-normalized LSTM cells in the encoder and the decoder (LSTM only).
    layer_norm: bool = False


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Optimisation, batching and checkpointing."""

    seed: int = 1234
    epochs: int = dataclasses.field(default=10, metadata=_range(1))
    steps_per_epoch: int | None = dataclasses.field(default=None, metadata=_range(1))
    batch_size: int = dataclasses.field(default=64, metadata=_range(1))
    batch_type: str = dataclasses.field(default="sentences", metadata=_choice(*BATCH_TYPES))
    bucket_width: int = dataclasses.field(default=5, metadata=_range(1))
    shuffle_buffer: int = dataclasses.field(default=50_000, metadata=_range(1))
    batch_shuffle_buffer: int = dataclasses.field(default=0, metadata=_range(0))
    learning_rate: float = dataclasses.field(default=1e-3, metadata=_range(0.0, open_low=True))
    clip_norm: float | None = dataclasses.field(default=5.0, metadata=_range(0.0, open_low=True))
    label_smoothing: float = dataclasses.field(default=0.0, metadata=_range(0.0, 0.99))
    early_stopping_patience: int | None = dataclasses.field(default=3, metadata=_range(1))
    # Multiply the learning rate by `learning_rate_decay` (null = never) when `best_metric`
    # has not improved for `learning_rate_patience` epochs (Keras's ReduceLROnPlateau).
    learning_rate_decay: float | None = dataclasses.field(
        default=None, metadata=_range(0.0, 1.0, open_low=True)
    )
    learning_rate_patience: int = dataclasses.field(default=2, metadata=_range(1))
    # Greedy sacreBLEU on the first `validation_bleu_sentences` validation pairs every
    # `validation_bleu_every` epochs (null = never), logged as `val_bleu`.
    validation_bleu_every: int | None = dataclasses.field(default=None, metadata=_range(1))
    validation_bleu_sentences: int = dataclasses.field(default=1000, metadata=_range(1))
    # What picks the best checkpoint and drives early stopping.
    best_metric: str = dataclasses.field(default="val_loss", metadata=_choice(*BEST_METRICS))
    # The training state (weights, optimizer, data position) is saved atomically every
    # `backup_every_steps` optimizer steps and at every epoch end; a killed run resumes there.
    backup_every_steps: int = dataclasses.field(default=200, metadata=_range(1))
    tensorboard: bool = True
    # tf.distribute strategy: `default` (one device), `mirrored` (the local GPUs, or every
    # logical CPU device), `multi_worker` (one process per worker, configured by TF_CONFIG).
    # `batch_size` is the global batch, split evenly between the replicas.
    strategy: str = dataclasses.field(default="default", metadata=_choice(*STRATEGIES))
    # Micro-batches whose gradients are summed into one optimizer step.
    accumulation_steps: int = dataclasses.field(default=1, metadata=_range(1))
    # Mixed precision compute dtype (variables and the generator's logits stay float32);
    # `float16` adds dynamic loss scaling.
    mixed_precision: str = dataclasses.field(default="none", metadata=_choice(*MIXED_PRECISIONS))
    # A wall-clock budget for the whole `train` call (null = none), summed over resumed runs:
    # training stops after the epoch at whose end another epoch would no longer fit.
    max_minutes: float | None = dataclasses.field(default=None, metadata=_range(0.0, open_low=True))
    # The step budget: optimizer steps, all epochs and resumed runs together (the same
    # training on any machine, where max_minutes depends on the machine's speed).
    max_steps: int | None = dataclasses.field(default=None, metadata=_range(1))
    # Keep the weights of the last `average_last_epochs` epochs (0 = off) and, when training
    # ends, write their average as the run directory `<run>/averaged` (`keras-nmt average`).
    average_last_epochs: int = dataclasses.field(default=0, metadata=_range(0))
    # Or keep the weights of the `average_best_epochs` epochs with the best `best_metric`
    # (0 = off; epochs without the metric are not kept) and average those. Either way, when
    # training ends, `<run>/final` is a copy of `<run>/averaged` or of the best epoch's
    # weights, whichever scores better on the validation set by `best_metric` (val_bleu:
    # BLEU decoded as the `decode` section says).
    average_best_epochs: int = dataclasses.field(default=0, metadata=_range(0))

    @property
    def averaged_epochs(self) -> int:
        """How many epochs' weights are kept and averaged (0 = no averaging)."""
        return self.average_last_epochs or self.average_best_epochs


@dataclasses.dataclass(frozen=True)
class DecodeConfig:
    """Inference settings used by `translate` and `evaluate`.

    `beam_size` 1 is greedy search; `length_penalty` is GNMT's alpha (0 = off); `n_best`
    hypotheses per sentence (<= beam_size) are returned where a caller asks for them.
    `sampling_topk` set samples instead of searching (back-translation): each token is drawn
    from the `sampling_topk` most probable ones (0: the whole vocabulary), log-probabilities
    divided by `sampling_temperature`, with the random seed `sampling_seed`.
    """

    batch_size: int = dataclasses.field(default=64, metadata=_range(1))
    beam_size: int = dataclasses.field(default=5, metadata=_range(1))
    length_penalty: float = dataclasses.field(default=0.6, metadata=_range(0.0))
    n_best: int = dataclasses.field(default=1, metadata=_range(1))
    max_length_ratio: float = dataclasses.field(default=2.0, metadata=_range(0.0, open_low=True))
    max_length_offset: int = dataclasses.field(default=10, metadata=_range(0))
    max_length: int = dataclasses.field(default=250, metadata=_range(1))
    sampling_topk: int | None = dataclasses.field(default=None, metadata=_range(0))
    sampling_temperature: float = dataclasses.field(
        default=1.0, metadata=_range(0.0, open_low=True)
    )
    sampling_seed: int = dataclasses.field(default=0, metadata=_range(0))


@dataclasses.dataclass(frozen=True)
class ExportConfig:
    """What the translation graph accepts at its door (used in process and by exports)."""

    max_input_tokens: int = dataclasses.field(default=250, metadata=_range(1))


_SECTIONS = {
    "data": DataConfig,
    "model": ModelConfig,
    "train": TrainConfig,
    "decode": DecodeConfig,
    "export": ExportConfig,
}


@dataclasses.dataclass(frozen=True)
class Config:
    """The whole configuration: one instance of each section."""

    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)
    decode: DecodeConfig = dataclasses.field(default_factory=DecodeConfig)
    export: ExportConfig = dataclasses.field(default_factory=ExportConfig)

    def __post_init__(self):
        _check_model(self.model, self.data)
        _check_train_corpora(self.data)
        if self.train.best_metric == "val_bleu" and not self.train.validation_bleu_every:
            raise ConfigError(
                "train.best_metric: val_bleu needs train.validation_bleu_every (epochs), got null"
            )
        if self.train.average_last_epochs and self.train.average_best_epochs:
            raise ConfigError(
                "train.average_best_epochs: average either the last epochs or the best ones, "
                f"got average_last_epochs {self.train.average_last_epochs} and "
                f"average_best_epochs {self.train.average_best_epochs}"
            )
        if self.decode.n_best > self.decode.beam_size:
            raise ConfigError(
                f"decode.n_best: expected at most decode.beam_size ({self.decode.beam_size}), "
                f"got {self.decode.n_best}"
            )

    @classmethod
    def from_dict(cls, raw: Any, overrides: list[str] | tuple[str, ...] = ()) -> Config:
        """Builds a validated config from nested dicts plus `section.key=value` overrides."""
        if raw is None:
            raw = {}
        if not isinstance(raw, dict):
            raise ConfigError(f"config: expected a mapping of sections, got {type(raw).__name__}")
        merged = {name: dict(raw.get(name) or {}) for name in _SECTIONS}
        for name in raw:
            if name not in _SECTIONS:
                raise ConfigError(
                    f"config: unknown section {name!r}; expected one of {sorted(_SECTIONS)}"
                )
            if raw[name] is not None and not isinstance(raw[name], dict):
                raise ConfigError(
                    f"{name}: expected a mapping of keys, got {type(raw[name]).__name__}"
                )
        for override in overrides:
            section, key, value = _parse_override(override)
            merged[section][key] = value
        sections = {name: _build_section(name, _SECTIONS[name], merged[name]) for name in _SECTIONS}
        return cls(**sections)

    @classmethod
    def from_yaml(cls, path: str | pathlib.Path, overrides=()) -> Config:
        """Reads a YAML file (see `from_dict`)."""
        path = pathlib.Path(path)
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as error:
            raise ConfigError(f"{path}: not valid YAML: {error}") from None
        return cls.from_dict(raw, overrides)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def save(self, path: str | pathlib.Path) -> None:
        pathlib.Path(path).write_text(
            yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True), encoding="utf-8"
        )

    def replace(self, overrides: list[str] | tuple[str, ...]) -> Config:
        """A copy with `section.key=value` overrides applied (and validated)."""
        return Config.from_dict(self.to_dict(), overrides)

    def with_section(self, name: str, **values: Any) -> Config:
        """A copy whose section `name` has `values` in place of its own, each checked as
        `from_dict` checks it (type, range, choices; then the cross-field checks)."""
        if name not in _SECTIONS:
            raise ConfigError(
                f"config: unknown section {name!r}; expected one of {sorted(_SECTIONS)}"
            )
        merged = {**dataclasses.asdict(getattr(self, name)), **values}
        return dataclasses.replace(self, **{name: _build_section(name, _SECTIONS[name], merged)})


def _parse_override(override: str) -> tuple[str, str, Any]:
    name, sep, text = override.partition("=")
    section, dot, key = name.strip().partition(".")
    if not sep or not dot or not key:
        raise ConfigError(f"override {override!r}: expected section.key=value")
    if section not in _SECTIONS:
        raise ConfigError(
            f"override {override!r}: unknown section {section!r}; expected one of "
            f"{sorted(_SECTIONS)}"
        )
    try:
        value = yaml.safe_load(text) if text.strip() else None
    except yaml.YAMLError:
        value = text
    return section, key, value


def _build_section(name: str, section_cls: type, values: dict):
    fields = {field.name: field for field in dataclasses.fields(section_cls)}
    hints = typing.get_type_hints(section_cls)
    for key in values:
        if key not in fields:
            raise ConfigError(f"{name}.{key}: unknown key; expected one of {sorted(fields)}")
    checked = {}
    for key, value in values.items():
        checked[key] = _check_value(f"{name}.{key}", value, hints[key], fields[key].metadata)
    return section_cls(**checked)


def _yaml_1_1_float(text: str) -> float | str:
    """`text` as a float if it is one in exponent notation without a dot (`1e-3`, which
    PyYAML's YAML 1.1 reads as a string), else `text` unchanged."""
    try:
        return float(text) if re.fullmatch(r"[-+]?[0-9]+[eE][-+]?[0-9]+", text.strip()) else text
    except ValueError:
        return text


def _check_value(key: str, value: Any, hint: Any, meta: dict) -> Any:
    allowed = (
        typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, UnionType) else (hint,)
    )
    optional = type(None) in allowed
    lists = [t for t in allowed if typing.get_origin(t) is list]
    if isinstance(value, (list, tuple)) and lists:
        (item,) = typing.get_args(lists[0])
        return [_check_value(f"{key}[{i}]", v, item, meta) for i, v in enumerate(value)]
    scalars = [t for t in allowed if t is not type(None) and typing.get_origin(t) is not list]
    if value is None:
        if optional:
            return None
        expected = scalars[0].__name__ if scalars else "a list"
        raise ConfigError(f"{key}: expected {expected}, got nothing (null)")
    if not scalars:
        raise ConfigError(f"{key}: expected a list, got {value!r}")
    base = scalars[0]
    if base is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true or false, got {value!r}")
    elif base is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
    elif base is float:
        if isinstance(value, str):
            value = _yaml_1_1_float(value)  # "1e-3": a float in YAML 1.2, a string in 1.1
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        value = float(value)
    elif base is str:
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
        value = str(value)
    if "choices" in meta and value not in meta["choices"]:
        raise ConfigError(f"{key}: expected one of {list(meta['choices'])}, got {value!r}")
    low, high = meta.get("low"), meta.get("high")
    if low is not None and (value < low or (meta.get("open_low") and value == low)):
        relation = ">" if meta.get("open_low") else ">="
        raise ConfigError(f"{key}: expected a value {relation} {low}, got {value!r}")
    if high is not None and value > high:
        raise ConfigError(f"{key}: expected a value <= {high}, got {value!r}")
    return value


def _check_train_corpora(data: DataConfig) -> None:
    """`data.train_weights`: one weight per training corpus."""
    prefixes = [data.train] if isinstance(data.train, str) else data.train
    if not prefixes:
        raise ConfigError("data.train: expected a prefix or a list of them, got []")
    if data.train_weights is not None and len(data.train_weights) != len(prefixes):
        raise ConfigError(
            f"data.train_weights: expected one weight per data.train prefix ({len(prefixes)}), "
            f"got {len(data.train_weights)}"
        )


def _check_model(model: ModelConfig, data: DataConfig) -> None:
    """Cross-field checks that no single value can make."""
    if model.bidirectional and model.encoder_units % 2:
        raise ConfigError(
            "model.encoder_units: a bidirectional encoder splits its units between two "
            f"directions, so expected an even number, got {model.encoder_units}"
        )
    direction_units = model.encoder_units // (2 if model.bidirectional else 1)
    if model.bridge == "sum":
        if model.encoder_layers != model.decoder_layers:
            raise ConfigError(
                "model.bridge: 'sum' maps encoder layer i to decoder layer i, so expected "
                f"encoder_layers == decoder_layers, got {model.encoder_layers} and "
                f"{model.decoder_layers}"
            )
        if direction_units != model.decoder_units:
            raise ConfigError(
                "model.bridge: 'sum' adds each direction's final state, so expected "
                f"decoder_units == {direction_units} (encoder units per direction), got "
                f"{model.decoder_units}"
            )
    if model.attention == "dot" and model.encoder_units != model.decoder_units:
        raise ConfigError(
            "model.attention: 'dot' scores decoder states against encoder outputs directly, so "
            f"expected encoder_units == decoder_units, got {model.encoder_units} and "
            f"{model.decoder_units}"
        )
    if model.layer_norm and model.rnn_type != "lstm":
        raise ConfigError(
            "model.layer_norm: only the LSTM cell is layer-normalized, got rnn_type "
            f"{model.rnn_type!r}"
        )
    if model.tie_embeddings and model.embedding_dim != model.decoder_units:
        raise ConfigError(
            "model.tie_embeddings: the generator reuses the target embedding matrix, so expected "
            f"embedding_dim == decoder_units, got {model.embedding_dim} and {model.decoder_units}"
        )
    if data.shared_vocab and data.source_vocab_size != data.target_vocab_size:
        raise ConfigError(
            "data.shared_vocab: one vocabulary serves both sides, so expected "
            f"source_vocab_size == target_vocab_size, got {data.source_vocab_size} and "
            f"{data.target_vocab_size}"
        )
