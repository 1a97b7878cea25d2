"""`train(config, run_dir)`: from a parallel corpus to a run directory with a trained model.

Training runs Keras's `model.fit` on `Seq2Seq.train_step` for every `train.strategy`, on
length-bucketed per-replica batches (`epoch_dataset`), in groups of
`train.accumulation_steps` micro-batches when that is above 1.

Re-running the same call on the same run directory resumes: SentencePiece models are
reused, and the latest checkpoint in `backup/` restores the weights, the optimizer state and
the position: epoch, step within the epoch, and the epoch's running sums. The checkpoint is
written atomically (`checkpoint.Checkpointer`, from the `fit_checkpoint.FitCheckpoint`
callback) every `train.backup_every_steps` optimizer steps and at every epoch end, so a
kill at any moment loses at most the steps since the last one; the resumed run continues
with the same batches it would have seen.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import itertools
import math
import pathlib
import shutil
import sys
import time
from collections.abc import Callable

import keras
import tensorflow as tf

from keras_nmt.config import Config, DataConfig, TrainConfig
from keras_nmt.data.corpus import ParallelCorpus
from keras_nmt.data.pipeline import (
    FilterCounts,
    count_filtered,
    group_micro_batches,
    make_dataset,
    pass_batches,
    tokenized_corpus,
)
from keras_nmt.data.tokenizer import Tokenizer, train_sentencepiece, write_model
from keras_nmt.errors import ConfigError, UserError
from keras_nmt.inference.translator import Translator
from keras_nmt.models.losses import MaskedNLL
from keras_nmt.models.seq2seq import Seq2Seq
from keras_nmt.run_dir import RunDir
from keras_nmt.training.averaging import average_run, best_epochs, epoch_checkpointer, write_run
from keras_nmt.training.callbacks import (
    EpochLogger,
    EpochWeights,
    FirstStepTime,
    ResumedEarlyStopping,
    ResumedReduceLROnPlateau,
    TimeBudget,
    TokenThroughput,
    TrainingProgress,
    ValidationBLEU,
)
from keras_nmt.training.corpus_cache import cache_file
from keras_nmt.training.distribute import (
    any_worker,
    is_chief,
    make_strategy,
    replicas_per_pipeline,
    worker_name,
)
from keras_nmt.training.fit_checkpoint import FitCheckpoint
from keras_nmt.training.optimizer import make_optimizer


@dataclasses.dataclass(frozen=True)
class TrainResult:
    """What a training run did."""

    run_dir: pathlib.Path
    epochs: int
    history: list[dict[str, float]]
    train_counts: FilterCounts
    valid_counts: FilterCounts | None


def log_to_stdout(message: str) -> None:
    """The default `log`: prints a line at once (also when stdout is a file)."""
    print(message, flush=True)


def log_nothing(message: str) -> None:
    """The `log` of the workers of a multi-worker run other than the chief."""


def resolve_data_dir(config: Config) -> Config:
    """Makes `data.dir` absolute (relative paths are taken from the working directory), so the
    saved config still points at the corpus from anywhere."""
    absolute = pathlib.Path(config.data.dir).expanduser().resolve()
    return config.with_section("data", dir=str(absolute))


def _check_resumable(run: RunDir, config: Config) -> None:
    """A run directory trained with another model or data config cannot be resumed."""
    if not run.config.is_file():
        return
    previous = Config.from_yaml(run.config)
    for section in ("data", "model"):
        changed = _changes(previous, config, section)
        if changed:
            raise UserError(
                f"{run.path} holds a run with a different {section} config ({'; '.join(changed)}); "
                "use a new --run-dir"
            )


def _changes(old: Config, new: Config, section: str) -> list[str]:
    """`"section.key: old -> new"` for each value of `section` that differs."""
    before, after = getattr(old, section), getattr(new, section)
    return [
        f"{section}.{f.name}: {getattr(before, f.name)!r} -> {getattr(after, f.name)!r}"
        for f in dataclasses.fields(before)
        if getattr(before, f.name) != getattr(after, f.name)
    ]


def corpora(config: Config) -> tuple[list[ParallelCorpus], ParallelCorpus | None]:
    """The training corpora (one per `data.train` prefix) and the validation corpus."""
    data = config.data
    prefixes = [data.train] if isinstance(data.train, str) else data.train
    train = [
        ParallelCorpus.from_prefix(data.dir, prefix, data.source_lang, data.target_lang)
        for prefix in prefixes
    ]
    valid = (
        ParallelCorpus.from_prefix(data.dir, data.valid, data.source_lang, data.target_lang)
        if data.valid
        else None
    )
    return train, valid


def tokenizers(
    run: RunDir,
    config: Config,
    train_corpora: list[ParallelCorpus],
    log: Callable[[str], None],
    chief: bool = True,
) -> tuple[Tokenizer, Tokenizer]:
    """Loads the run's SentencePiece models, training them first on all `train_corpora` if
    they are missing (the other workers of a multi-worker run wait for the chief's, in the
    shared run directory)."""
    data = config.data

    def source_lines():
        return itertools.chain.from_iterable(c.source_lines() for c in train_corpora)

    def target_lines():
        return itertools.chain.from_iterable(c.target_lines() for c in train_corpora)

    if not chief:
        _wait_for(run.source_model, run.target_model)
    elif not (run.source_model.is_file() and run.target_model.is_file()):
        options = dict(
            model_type=data.sentencepiece_model_type, max_sentences=data.sentencepiece_max_sentences
        )
        if data.shared_vocab:
            log(f"training a shared SentencePiece model ({data.source_vocab_size} pieces)")
            lines = itertools.chain(source_lines(), target_lines())
            train_sentencepiece(lines, run.source_model, data.source_vocab_size, **options)
            write_model(run.target_model, run.source_model.read_bytes())
        else:
            log(
                f"training SentencePiece models ({data.source_vocab_size} source, "
                f"{data.target_vocab_size} target pieces)"
            )
            train_sentencepiece(source_lines(), run.source_model, data.source_vocab_size, **options)
            train_sentencepiece(target_lines(), run.target_model, data.target_vocab_size, **options)
    return Tokenizer.load(run.source_model), Tokenizer.load(run.target_model)


def _wait_for(*paths: pathlib.Path, timeout: float = 1800.0) -> None:
    deadline = time.monotonic() + timeout
    while not all(path.is_file() for path in paths):
        if time.monotonic() > deadline:
            raise UserError(
                f"waited {timeout:.0f} s for the chief to write {', '.join(map(str, paths))}: "
                "the workers of a multi-worker run must share the run directory"
            )
        time.sleep(0.5)


def build_model(config: Config, source_vocab_size: int, target_vocab_size: int) -> Seq2Seq:
    model = Seq2Seq.from_model_config(config.model, source_vocab_size, target_vocab_size)
    model.build()
    return model


def validation_bleu(
    model, source_tokenizer, target_tokenizer, config: Config, greedy: bool = True
) -> ValidationBLEU:
    """The `ValidationBLEU` callback on the first `train.validation_bleu_sentences` pairs of
    the validation corpus: greedy, or with the `decode` section's search (`greedy=False`)."""
    _, valid_corpus = corpora(config)
    limit = config.train.validation_bleu_sentences
    sources = list(itertools.islice(valid_corpus.source_lines(), limit))
    references = list(itertools.islice(valid_corpus.target_lines(), limit))
    translator = Translator(model, source_tokenizer, target_tokenizer, config)
    every = config.train.validation_bleu_every
    return ValidationBLEU(translator, sources, references, every, greedy)


@contextlib.contextmanager
def dtype_policy(mixed_precision: str):
    """Layers made inside get the `train.mixed_precision` policy (`mixed_bfloat16` or
    `mixed_float16`: variables float32, compute in 16 bits); the global policy is restored
    on exit."""
    previous = keras.config.dtype_policy()
    if mixed_precision != "none":
        keras.config.set_dtype_policy(f"mixed_{mixed_precision}")
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def epoch_dataset(tokenized: list[tf.data.Dataset], data: DataConfig, per_replica: TrainConfig):
    """`(epoch, input_context)` -> one input pipeline's endless dataset of what a replica
    trains a step on in `epoch`: its shard of the pairs of the training corpora `tokenized`
    (drawn at `data.train_weights`, if given), shuffled for that epoch, batched as
    `per_replica` says (`_per_replica_batch_size`), and grouped by
    `per_replica.accumulation_steps` (`group_micro_batches`) when above 1. The same dataset
    every time it is called: a resumed run skips the steps it took."""

    def make(epoch: int, input_context: tf.distribute.InputContext) -> tf.data.Dataset:
        shard = (input_context.num_input_pipelines, input_context.input_pipeline_id)
        batches = make_dataset(
            tokenized, data, per_replica, True, epoch, shard, data.train_weights
        ).repeat()
        if per_replica.accumulation_steps > 1:
            batches = group_micro_batches(batches, per_replica.accumulation_steps)
        return batches

    return make


def _per_replica_batch_size(config: Config, replicas: int) -> TrainConfig:
    if config.train.batch_size % replicas:
        raise ConfigError(
            f"train.batch_size: the global batch is split between {replicas} replicas, so "
            f"expected a multiple of {replicas}, got {config.train.batch_size}"
        )
    return dataclasses.replace(config.train, batch_size=config.train.batch_size // replicas)


def train(
    config: Config,
    run_dir: str | pathlib.Path,
    log: Callable[[str], None] = log_to_stdout,
    progress: bool | None = None,
    init_from: str | pathlib.Path | None = None,
) -> TrainResult:
    """Trains (or resumes training) a translator in `run_dir`; see the module docstring.

    `progress` draws a progress bar on stdout inside each epoch (`TrainingProgress`); by
    default when stdout is a terminal (and in the chief only), else the epochs' lines alone.

    `init_from` (fine-tuning): a trained run directory, only read, whose SentencePiece models
    and weights a new run starts from (fresh optimizer, `config`'s data, the same model).

    Raises:
        UserError: missing or misaligned corpus, a run directory holding another config, or
            an `init_from` that is not a trained run of the same model config.
    """
    started = time.time()  # `train.max_minutes` counts from here
    # First: MultiWorkerMirroredStrategy must exist before any other TensorFlow op runs.
    strategy = make_strategy(config.train.strategy)
    chief = is_chief(strategy)
    log = log if chief else log_nothing
    progress = (sys.stdout.isatty() if progress is None else progress) and chief
    config = resolve_data_dir(config)
    run = _open_run_dir(run_dir, config)
    initial = _initial_run(init_from, run, config, chief) if init_from is not None else None
    per_replica = _per_replica_batch_size(config, strategy.num_replicas_in_sync)
    train_corpora, valid_corpus = _checked_corpora(config, log)
    if chief:
        config.save(run.config)
    keras.utils.set_random_seed(config.train.seed)
    data = _prepare_data(run, config, train_corpora, valid_corpus, strategy, log)
    steps = _steps_per_epoch(config, data.train_counts, per_replica, strategy.num_replicas_in_sync)
    model, state = _model_and_state(config, strategy, data.tokenizers, run, steps, chief)
    if not _restore(state, run, config, log, initial):
        finished = int(state.position.epoch.numpy())
        return TrainResult(
            run.path, finished, run.finished_epochs(), data.train_counts, data.valid_counts
        )
    run_callbacks = callbacks(
        config,
        run,
        model,
        state.token_count,
        data.tokenizers,
        data.valid,
        chief,
        log,
        _time_budget(started, run, config, strategy, log),
        progress,
        lambda: _finished_before(run, int(state.position.epoch.numpy())),
    )
    make_epoch = epoch_dataset(data.train, config.data, per_replica)
    _fit(model, make_epoch, state, config.train.epochs, steps, data.valid, run_callbacks)
    if chief and config.train.averaged_epochs:
        _average(run, config, data.tokenizers, data.valid, log)
    history = run.finished_epochs()
    return TrainResult(run.path, len(history), history, data.train_counts, data.valid_counts)


def _finished_before(run: RunDir, epoch: int) -> list[dict[str, float]]:
    """history.csv's rows of the epochs before `epoch` (0-based): without the row of an
    epoch logged by a run killed before it saved that epoch's end, which is trained again."""
    return [row for row in run.finished_epochs() if row.get("epoch", -1) < epoch]


def _open_run_dir(run_dir: str | pathlib.Path, config: Config) -> RunDir:
    """The run directory, made if missing; one holding a run of another config is refused."""
    run = RunDir(run_dir)
    run.path.mkdir(parents=True, exist_ok=True)
    _check_resumable(run, config)
    return run


def _initial_run(path: str | pathlib.Path, run: RunDir, config: Config, chief: bool) -> RunDir:
    """The trained run `path` that a fine-tuning run starts from, checked: a run directory
    with weights, SentencePiece models and `config.model` as its model config. Its
    SentencePiece models are copied into `run` (by the chief), which then tokenizes as it
    does; `path` itself is only read."""
    initial = RunDir(path)
    needed = (initial.config, initial.weights, initial.source_model, initial.target_model)
    missing = [item.name for item in needed if not item.is_file()]
    if missing:
        raise UserError(
            f"--init-from {initial.path}: not a trained run ({', '.join(missing)} missing)"
        )
    if initial.path.resolve() == run.path.resolve():
        raise UserError("--init-from: expected another run directory than --run-dir")
    changed = _changes(Config.from_yaml(initial.config), config, "model")
    if changed:
        raise UserError(f"--init-from {initial.path}: another model config ({'; '.join(changed)})")
    if chief:
        for name in ("source_model", "target_model"):
            target = getattr(run, name)
            if not target.is_file():
                shutil.copyfile(getattr(initial, name), target)
    return initial


def _load_model_weights(model: Seq2Seq, path: pathlib.Path) -> None:
    """The model's weights from the weights file `path`, and nothing else: a compiled model's
    `load_weights` would also take the optimizer's state (its step count, moments and
    learning rate) saved beside them, where fine-tuning starts a fresh optimizer."""
    source = Seq2Seq.from_config(model.get_config())
    source.build()
    source.load_weights(path)
    model.set_weights(source.get_weights())


def _checked_corpora(
    config: Config, log: Callable[[str], None]
) -> tuple[list[tuple[ParallelCorpus, int]], ParallelCorpus | None]:
    """The training corpora with their line counts, and the validation corpus (`corpora`),
    each checked (`ParallelCorpus.check`) and its line count logged."""
    train_corpora, valid_corpus = corpora(config)
    checked = [(corpus, corpus.check()) for corpus in train_corpora]
    for corpus, lines in checked:
        log(f"training corpus: {corpus.name}: {lines} lines")
    if valid_corpus is not None:
        log(f"validation corpus: {valid_corpus.name}: {valid_corpus.check()} lines")
    return checked, valid_corpus


@dataclasses.dataclass(frozen=True)
class _RunData:
    """What a run trains and validates on: the tokenizers, the tokenized training pairs
    (`tokenized_corpus`, one dataset per training corpus), the validation batches (None
    without a validation corpus) and the filter counts of both."""

    tokenizers: tuple[Tokenizer, Tokenizer]
    train: list[tf.data.Dataset]
    train_counts: FilterCounts
    valid: tf.data.Dataset | None
    valid_counts: FilterCounts | None


def _prepare_data(
    run: RunDir,
    config: Config,
    train_corpora: list[tuple[ParallelCorpus, int]],
    valid_corpus: ParallelCorpus | None,
    strategy: tf.distribute.Strategy,
    log: Callable[[str], None],
) -> _RunData:
    """Loads (or trains) the tokenizers, tokenizes both corpora (each training corpus
    `(corpus, lines)` cached in memory, or in a file of the run directory above
    `data.memory_cache_max_pairs` pairs: `corpus_cache`) and counts what filtering keeps,
    logging the counts. This process's task in `strategy` names its cache files.

    Raises:
        UserError: a training corpus has no pair left after filtering.
    """
    corpora_only = [corpus for corpus, _ in train_corpora]
    tokenizer_pair = tokenizers(run, config, corpora_only, log, is_chief(strategy))
    worker = worker_name(strategy)
    train_tokenized = []
    for index, (corpus, lines) in enumerate(train_corpora):
        limit = config.data.memory_cache_max_pairs
        path = cache_file(run, f"train{index}", corpus, lines, limit, tokenizer_pair, worker)
        where = "in memory" if path is None else f"in {path}"
        log(f"{corpus.name}: {lines} pairs (data.memory_cache_max_pairs {limit}), cached {where}")
        train_tokenized.append(tokenized_corpus(corpus, *tokenizer_pair, cache_file=path))
    counts = [count_filtered(tokenized, config.data) for tokenized in train_tokenized]
    for corpus, corpus_counts in zip(corpora_only, counts):
        if corpus_counts.kept == 0:
            raise UserError(f"{corpus.name}: no training pair left after filtering")
    train_counts = functools.reduce(lambda a, b: a + b, counts)
    log(f"training data: {train_counts}")
    valid_counts, valid_data = _validation_data(valid_corpus, tokenizer_pair, config, log)
    return _RunData(tokenizer_pair, train_tokenized, train_counts, valid_data, valid_counts)


def _restore(
    state: FitCheckpoint,
    run: RunDir,
    config: Config,
    log: Callable[[str], None],
    initial: RunDir | None = None,
) -> bool:
    """Restores `state` from the run's latest checkpoint, if any (else, fine-tuning, the model
    from `initial`'s weights), and says whether training goes on: not when the run stopped
    early, has finished `train.epochs` epochs or spent `train.max_steps`.

    Raises:
        UserError: the run has finished epochs but no checkpoint to resume from.
    """
    restored = state.restore()
    if restored is None and run.finished_epochs():
        raise UserError(
            f"{run.path} has finished epochs but no training state in {run.backup} (deleted, "
            "or written by an older keras-nmt), so it cannot be resumed; use a new --run-dir"
        )
    finished = int(state.position.epoch.numpy())
    if restored is None and initial is not None:
        _load_model_weights(state.trained, initial.weights)
        log(f"starting from the weights of {initial.path} (fine-tuning)")
    if restored is not None:
        log(
            f"resuming from {state.checkpointer.path(restored)}: epoch {finished + 1}, "
            f"step {int(state.position.step.numpy())}, optimizer step {restored}"
        )
    if bool(state.position.stopped.numpy()):
        log(f"{run.path} stopped early after {finished} epochs; use a new --run-dir to go on")
        return False
    if state.budget_spent():
        log(
            f"{run.path} has taken train.max_steps = {config.train.max_steps} optimizer steps; "
            "raise it to go on"
        )
        return False
    if finished >= config.train.epochs:
        log(f"{run.path} already finished {finished} epochs (train.epochs = {config.train.epochs})")
        return False
    return True


def _validation_data(
    corpus: ParallelCorpus | None,
    tokenizers: tuple[Tokenizer, Tokenizer],
    config: Config,
    log: Callable[[str], None],
) -> tuple[FilterCounts | None, tf.data.Dataset | None]:
    """The validation corpus's filter counts and batches (None, None without one)."""
    if corpus is None:
        return None, None
    tokenized = tokenized_corpus(corpus, *tokenizers)
    counts = count_filtered(tokenized, config.data)
    log(f"validation data: {counts}")
    data = make_dataset(tokenized, config.data, config.train, shuffle=False)
    # A known length: `fit` then ends its validation without an "ran out of data" warning.
    batches = pass_batches(counts, config.data, config.train)
    return counts, data.apply(tf.data.experimental.assert_cardinality(batches))


def _steps_per_epoch(
    config: Config, counts: FilterCounts, per_replica: TrainConfig, replicas: int
) -> int:
    """Optimizer steps in an epoch: `train.steps_per_epoch`, or enough for one pass over the
    unsharded data (all training corpora) in per-replica batches, every batch going to one
    replica and `train.accumulation_steps` of them to a step (the last step of a pass that
    does not divide evenly takes its missing batches from the start of the pass). The count is the
    same in every pass, and `pass_batches` works it out from the filter `counts` of all the
    training corpora, without reading them again."""
    if config.train.steps_per_epoch:
        return config.train.steps_per_epoch
    batches = pass_batches(counts, config.data, per_replica)
    return math.ceil(batches / (replicas * config.train.accumulation_steps))


def _model_and_state(
    config: Config,
    strategy: tf.distribute.Strategy,
    tokenizers: tuple[Tokenizer, Tokenizer],
    run: RunDir,
    steps: int,
    chief: bool,
) -> tuple[Seq2Seq, FitCheckpoint]:
    """The compiled model, with its optimizer built, and the `FitCheckpoint` callback that
    saves its training state, not yet restored."""
    with strategy.scope(), dtype_policy(config.train.mixed_precision):
        model = build_model(config, tokenizers[0].vocab_size, tokenizers[1].vocab_size)
        model.compile(
            optimizer=make_optimizer(config.train), loss=MaskedNLL(config.train.label_smoothing)
        )
    with strategy.scope():
        model.optimizer.build(model.trainable_variables)
        state = FitCheckpoint(
            model,
            run.backup,
            steps,
            config.train.backup_every_steps,
            chief,
            max_steps=config.train.max_steps,
        )
    return model, state


def callbacks(
    config: Config,
    run: RunDir,
    model: Seq2Seq,
    token_count: Callable[[], float],
    tokenizers: tuple[Tokenizer, Tokenizer],
    valid_data: tf.data.Dataset | None,
    chief: bool,
    log: Callable[[str], None],
    time_budget: TimeBudget | None = None,
    progress: bool = False,
    history: Callable[[], list[dict[str, float]]] | None = None,
) -> list[keras.callbacks.Callback]:
    """The Keras callbacks of a run, in the order Keras calls them. Those that decide
    (validation BLEU, early stopping, NaN, the time budget) run in every worker so that all
    stop together; those that write files only in the chief. `token_count` returns the
    epoch's running non-PAD target token count (for the progress bar and `TokenThroughput`).
    `history` returns the logs of the run's finished epochs, from which learning-rate decay
    and early stopping count on (default: all of history.csv).
    """
    monitor, mode = _monitor(config, valid_data)
    found = _measuring_callbacks(
        config, model, token_count, tokenizers, valid_data, time_budget, progress, log
    )
    history = history or run.finished_epochs
    found += _steering_callbacks(config, run, model, valid_data, monitor, mode, chief, history)
    if chief:
        found += _writing_callbacks(config, run, valid_data, monitor, mode, log)
    return found


def _monitor(config: Config, valid_data: tf.data.Dataset | None) -> tuple[str, str]:
    """What picks the best weights and steers training, and whether higher ("max") or lower
    ("min") is better: `train.best_metric`, or the training loss without a validation set."""
    monitor = config.train.best_metric if valid_data is not None else "loss"
    return monitor, "max" if monitor == "val_bleu" else "min"


def _measuring_callbacks(
    config: Config,
    model: Seq2Seq,
    token_count: Callable[[], float],
    tokenizers: tuple[Tokenizer, Tokenizer],
    valid_data: tf.data.Dataset | None,
    time_budget: TimeBudget | None,
    progress: bool,
    log: Callable[[str], None],
) -> list[keras.callbacks.Callback]:
    """The progress bar, the callbacks that add to the epoch logs (`val_bleu`,
    `training_minutes`, `target_tokens_per_second`) and the first step's time (logged with
    the time budget's start). The progress bar comes first, so that
    `TokenThroughput`'s timing of a step includes its update; the rest come before every
    callback that reads the logs."""
    found = []
    if progress:
        found.append(TrainingProgress(token_count))
    if config.train.validation_bleu_every and valid_data is not None:
        found.append(validation_bleu(model, *tokenizers, config))
    if time_budget is not None:
        found += [time_budget, FirstStepTime(time_budget.started, log)]
    found.append(TokenThroughput(token_count))
    return found


def _steering_callbacks(
    config: Config,
    run: RunDir,
    model: Seq2Seq,
    valid_data: tf.data.Dataset | None,
    monitor: str,
    mode: str,
    chief: bool,
    history: Callable[[], list[dict[str, float]]],
) -> list[keras.callbacks.Callback]:
    """What every worker runs at batch and epoch ends: stopping on NaN, keeping the epochs'
    weights for averaging, decaying the learning rate and early stopping (both counting on
    from the finished epochs that `history` returns)."""
    options = config.train
    found: list[keras.callbacks.Callback] = [keras.callbacks.TerminateOnNaN()]
    if options.averaged_epochs:
        keep = options.average_last_epochs or None  # None: `_best_epochs` removes the others
        checkpointer = epoch_checkpointer(run, model, keep=keep, write=chief)
        ranking = None
        if options.average_best_epochs:
            count = options.average_best_epochs
            ranking = functools.partial(_best_epochs, run, monitor, mode, count)
        found.append(EpochWeights(checkpointer, ranking))
    if options.learning_rate_decay and valid_data is not None:
        found.append(
            ResumedReduceLROnPlateau(
                history,
                monitor=monitor,
                mode=mode,
                factor=options.learning_rate_decay,
                patience=options.learning_rate_patience,
                min_lr=options.learning_rate / 1000,
                verbose=0,
            )
        )
    if options.early_stopping_patience and valid_data is not None:
        found.append(
            ResumedEarlyStopping(
                history, monitor=monitor, mode=mode, patience=options.early_stopping_patience
            )
        )
    return found


def _best_epochs(
    run: RunDir, monitor: str, mode: str, count: int, epoch: int, logs: dict
) -> list[int]:
    """The `count` epochs (1-based) with the best `monitor`: the finished ones' values from
    history.csv, `epoch`'s from its `logs` (`averaging.best_epochs`)."""
    scores = {int(row["epoch"]) + 1: row.get(monitor, math.nan) for row in run.finished_epochs()}
    scores[epoch] = float(logs.get(monitor, math.nan))
    return best_epochs(scores, count, mode)


def _writing_callbacks(
    config: Config,
    run: RunDir,
    valid_data: tf.data.Dataset | None,
    monitor: str,
    mode: str,
    log: Callable[[str], None],
) -> list[keras.callbacks.Callback]:
    """What the chief alone runs: the best weights, history.csv, TensorBoard, the epoch
    lines."""
    found = [
        keras.callbacks.ModelCheckpoint(
            str(run.weights),
            monitor=monitor,
            mode=mode,
            save_best_only=True,
            save_weights_only=True,
            initial_value_threshold=run.best(monitor, mode) if valid_data is not None else None,
        ),
        keras.callbacks.CSVLogger(str(run.history), append=True),
    ]
    if config.train.tensorboard:
        found.append(keras.callbacks.TensorBoard(str(run.logs)))
    found.append(EpochLogger(log, config.train.epochs))
    return found


def _fit(
    model: Seq2Seq,
    epoch_dataset: Callable[[int, tf.distribute.InputContext], tf.data.Dataset],
    state: FitCheckpoint,
    epochs: int,
    steps: int,
    validation_data: tf.data.Dataset | None,
    callback_list: list[keras.callbacks.Callback],
) -> None:
    """`model.fit` from `state`'s restored position up to `epochs` epochs of `steps`
    optimizer steps, `state` saving the position (put after the other callbacks).

    `fit` has an initial epoch but no initial step, so an epoch resumed mid-way is its own
    `fit` call, of its remaining steps, and the later epochs a second one. Each call's data
    is one dataset of its epochs' batches in turn, epoch `e`'s from `epoch_dataset(e, ...)`
    (the same batches for the same epoch), the resumed epoch's first ones skipped. Callbacks
    see two training runs then; early stopping and learning-rate decay replay the finished
    epochs at the start of each (`ResumedEarlyStopping`, `ResumedReduceLROnPlateau`).
    """
    strategy = model.distribute_strategy
    run_callbacks = [*callback_list, state]
    epoch, start = int(state.position.epoch.numpy()), int(state.position.step.numpy())

    def run(first: int, last: int, skip: int) -> None:
        def pipeline(input_context: tf.distribute.InputContext) -> tf.data.Dataset:
            per_step = replicas_per_pipeline(strategy, input_context)
            dataset = None
            for e in range(first, last):
                taken = epoch_dataset(e, input_context)
                if e == first:
                    taken = taken.skip(skip * per_step).take((steps - skip) * per_step)
                else:
                    taken = taken.take(steps * per_step)
                dataset = taken if dataset is None else dataset.concatenate(taken)
            return dataset

        model.fit(
            strategy.distribute_datasets_from_function(pipeline),
            initial_epoch=first,
            epochs=last,
            steps_per_epoch=steps - skip,
            validation_data=validation_data,
            callbacks=run_callbacks,
            shuffle=False,  # the pipeline shuffles (per epoch)
            verbose=0,
        )

    if start:
        run(epoch, epoch + 1, start)
        if model.stop_training or int(state.position.epoch.numpy()) != epoch + 1:
            return
        epoch += 1
    if epoch < epochs:
        run(epoch, epochs, 0)


def _time_budget(
    started: float,
    run: RunDir,
    config: Config,
    strategy: tf.distribute.Strategy,
    log: Callable[[str], None],
) -> TimeBudget:
    """The `TimeBudget` of a run whose `train` call started at `started` (`time.time()`):
    it adds the minutes the run directory's previous runs logged, and the workers of a
    multi-worker run agree on when to stop."""
    rows = run.finished_epochs()
    previous_minutes = rows[-1].get("training_minutes", 0.0) if rows else 0.0
    return TimeBudget(
        started,
        previous_minutes,
        config.train.max_minutes,
        lambda stop: any_worker(strategy, stop),
        log,
    )


def _average(
    run: RunDir,
    config: Config,
    tokenizers: tuple[Tokenizer, Tokenizer],
    valid_data: tf.data.Dataset | None,
    log: Callable[[str], None],
) -> None:
    """Writes `run.averaged` (see `averaging`), logs its greedy validation BLEU, and copies
    it or the best epoch's weights to `run.final` (`_better_of`)."""
    path, epochs = average_run(run.path, run.averaged, config.train.averaged_epochs)
    contiguous = epochs == list(range(epochs[0], epochs[-1] + 1))
    named = f"{epochs[0]}-{epochs[-1]}" if contiguous else ", ".join(map(str, epochs))
    message = f"averaged the weights of epochs {named} into {path}"
    if config.train.validation_bleu_every and valid_data is not None:
        bleu = validation_bleu(Translator.load_run_dir(path).model, *tokenizers, config).bleu()
        best = run.best("val_bleu", "max")
        message += f": val_bleu {bleu:.2f} (best epoch: {best:.2f})"
    log(message)
    chosen, reason = _better_of(RunDir(path), run, config, tokenizers, valid_data)
    write_run(chosen, run.final, lambda target: shutil.copyfile(chosen.weights, target))
    which = "the averaged weights" if chosen.path == path else "the best epoch's weights"
    log(f"{run.final}: {which} ({reason})")


def _better_of(
    averaged: RunDir,
    run: RunDir,
    config: Config,
    tokenizers: tuple[Tokenizer, Tokenizer],
    valid_data: tf.data.Dataset | None,
) -> tuple[RunDir, str]:
    """The run directory to ship, `averaged` or `run` (its best epoch's weights), and why.

    With `best_metric: val_bleu`, the one with the higher validation BLEU when decoded as
    the `decode` section says (beam search, usually): the greedy BLEU that picks the best
    epoch undersells averaged weights, whose gain shows in beam search (docs/multi30k.md).
    With `val_loss`, the lower validation loss. Without a validation set, `averaged`."""
    if valid_data is None:
        return averaged, "no validation set"
    if config.train.best_metric == "val_bleu":
        scores = [
            validation_bleu(
                Translator.load_run_dir(candidate.path).model, *tokenizers, config, greedy=False
            ).bleu()
            for candidate in (averaged, run)
        ]
        what = f"val BLEU with beam {config.decode.beam_size}"
        better = scores[0] >= scores[1]
    else:
        model = Translator.load_run_dir(averaged.path).model
        scores = [_validation_loss(model, valid_data, config), run.best("val_loss", "min")]
        what = "val_loss"
        better = scores[0] <= scores[1]
    reason = f"{what}: {scores[0]:.4g} averaged, {scores[1]:.4g} the best epoch"
    return (averaged if better else run), reason


def _validation_loss(model: Seq2Seq, valid_data: tf.data.Dataset, config: Config) -> float:
    """`model`'s `val_loss`: its loss over the validation batches, as `fit` measures it."""
    model.compile(loss=MaskedNLL(config.train.label_smoothing))
    return float(model.evaluate(valid_data, verbose=0, return_dict=True)["loss"])
