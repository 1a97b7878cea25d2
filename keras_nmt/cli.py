"""The `keras-nmt` command: each subcommand is a thin layer over one library function.

    keras-nmt train --config FILE --run-dir DIR [--strategy S] [--init-from RUN_DIR]
                    [--set section.key=value ...]
    keras-nmt translate --model PATH [--model PATH ...] [--input FILE] [--output FILE]
                        [--batch-size N] [--beam-size K] [--length-penalty A] [--n-best N]
                        [--sampling-topk K [--sampling-temperature T] [--seed N]]
                        [--plot-attention DIR]
    keras-nmt evaluate --model PATH [--model PATH ...] --src FILE --ref FILE [--beam-size K]
                       [--length-penalty A] [--lowercase] [--ter]
    keras-nmt score --model PATH [--model PATH ...] --src FILE --tgt FILE [--length-penalty A]
                    [--per-token]
    keras-nmt average --run-dir DIR [--last N] [--output-dir OUT]
    keras-nmt export --model RUN_DIR [--model RUN_DIR ...] --format saved_model
                     [--output-dir BASE] [--name NAME]
                     [--version N] [--set decode.KEY=VALUE ...]
    keras-nmt export --model RUN_DIR --format tflite --output FILE.tflite
                     [--quantize none|float16|dynamic_range] [--set decode.KEY=VALUE ...]
    keras-nmt quickstart [--run-dir DIR] [--export-dir BASE] [--set section.key=value ...]

PATH is a run directory, a SavedModel export (a version directory, or a model base path
whose highest version is used) or a `.tflite` export. Several `--model` run directories
decode as one ensemble (the mean of their probabilities; they must share the target
SentencePiece model).

`translate` writes one translation a line; with `--n-best N` > 1 it writes N lines per input
sentence, best first, each `INDEX ||| TRANSLATION ||| SCORE` (INDEX counts input lines from 0;
SCORE is the log-probability divided by GNMT's length penalty). `score` writes, per line
pair, the SCORE that `translate` would give that translation (EOS included); with
`--per-token` it is followed by ` ||| ` and each piece's `PIECE:LOG_PROB`, EOS last.

Errors a user can cause print one line (`keras-nmt: error: ...`) and exit with status 2.
"""

from __future__ import annotations

import argparse
import contextlib
import pathlib
import sys

from tqdm import tqdm

import keras_nmt  # noqa: F401  (sets the Keras backend before anything imports Keras)
from keras_nmt.config import STRATEGIES, TFLITE_QUANTIZATIONS, Config
from keras_nmt.errors import UserError
from keras_nmt.evaluation.attention_plot import plot_translations

# The modules that load TensorFlow (seconds: `python -X importtime -c "import tensorflow"`)
# are imported inside the subcommand that needs them, so that `keras-nmt --help`, a mistyped
# flag or an invalid config answer at once.


def _train(args) -> None:
    overrides = [*args.set, *([f"train.strategy={args.strategy}"] if args.strategy else [])]
    config = Config.from_yaml(args.config, overrides)
    from keras_nmt.training.train import train

    train(config, args.run_dir, init_from=args.init_from)


def _load(paths: list[str]):
    """The translator of one model (run directory or export), or the ensemble of several
    run directories."""
    from keras_nmt.inference.loading import load
    from keras_nmt.inference.translator import Translator

    if len(paths) == 1:
        return load(paths[0])
    return Translator.ensemble([Translator.load_run_dir(path) for path in paths])


def _translate(args) -> None:
    sampling = {
        "sampling_topk": args.sampling_topk,
        "sampling_temperature": args.sampling_temperature,
        "sampling_seed": args.seed,
    }
    if args.sampling_topk is None and any(v is not None for v in sampling.values()):
        raise UserError("--sampling-temperature and --seed sample: give --sampling-topk too")
    translator = _load(args.model).with_decoding(
        args.beam_size, args.n_best, args.length_penalty, **sampling
    )
    n_best = translator.n_best
    index = 0
    with _open(args.input, "r") as source, _open(args.output, "w") as target:
        with _progress(args.input) as bar:
            for chunk in _line_chunks(source, TRANSLATE_CHUNK):
                results = translator.translate_with_scores(chunk, batch_size=args.batch_size)
                if args.plot_attention:
                    _plot_attention(translator, chunk, index, args.plot_attention)
                for hypotheses in results:
                    for translation, score in hypotheses:
                        if n_best == 1:
                            target.write(translation + "\n")
                        else:
                            target.write(f"{index} ||| {translation} ||| {score:.4f}\n")
                    index += 1
                target.flush()
                bar.update(len(chunk))


def _plot_attention(translator, sentences: list[str], first_index: int, directory: str) -> None:
    """Writes `directory/INDEX.png` for each sentence: its best translation's attention."""
    names = [f"{first_index + offset:06d}.png" for offset in range(len(sentences))]
    plot_translations(translator, sentences, [pathlib.Path(directory) / n for n in names])


# Lines read, translated and written at a time: memory stays bounded for any file size, and
# each chunk is still large enough to batch sentences of similar length together.
TRANSLATE_CHUNK = 2048


def _line_chunks(handle, size: int):
    chunk = []
    for line in handle:
        chunk.append(line.rstrip("\r\n"))
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


@contextlib.contextmanager
def _progress(path: str | None):
    """A tqdm bar on stderr over the lines of `path`; a no-op for stdin."""
    total = None
    if path is not None:
        with open(path, "rb") as handle:
            total = sum(1 for _ in handle)
    with tqdm(total=total, unit="sent", desc="translating", disable=path is None) as bar:
        yield bar


def _evaluate(args) -> None:
    from keras_nmt.evaluation.bleu import evaluate

    translator = _load(args.model).with_decoding(args.beam_size, length_penalty=args.length_penalty)
    print(evaluate(translator, args.src, args.ref, lowercase=args.lowercase, ter=args.ter))


def _score(args) -> None:
    from keras_nmt.data.corpus import ParallelCorpus

    translator = _load(args.model).with_decoding(length_penalty=args.length_penalty)
    corpus = ParallelCorpus(source=pathlib.Path(args.src), target=pathlib.Path(args.tgt))
    corpus.check()  # aligned, UTF-8
    sources, targets = list(corpus.source_lines()), list(corpus.target_lines())
    for score, pieces in translator.score(sources, targets):
        per_token = " ".join(f"{piece}:{lp:.4f}" for piece, lp in pieces)
        print(f"{score:.4f} ||| {per_token}" if args.per_token else f"{score:.4f}")


def _average(args) -> None:
    from keras_nmt.training.averaging import average_run

    path, epochs = average_run(args.run_dir, args.output_dir, args.last)
    print(f"averaged the weights of epochs {', '.join(map(str, epochs))} into {path}")


def _export(args) -> None:
    from keras_nmt.inference.translator import Translator

    bad = [item for item in args.set if not item.startswith(("decode.", "export."))]
    if bad:
        raise UserError(f"--set: an export may change only decode.* and export.*, got {bad[0]}")
    translator = Translator.ensemble([Translator.load_run_dir(path) for path in args.model])
    if args.set:
        translator = translator.with_config(translator.config.replace(args.set))
    if args.format == "tflite":
        from keras_nmt.exporting.tflite import export_tflite

        if args.output is None:
            raise UserError("--output FILE.tflite is required with --format tflite")
        path = export_tflite(translator, args.output, args.quantize)
    else:
        from keras_nmt.exporting.saved_model import export_saved_model

        if args.output is not None or args.quantize != "none":
            raise UserError("--output and --quantize are for --format tflite")
        name = args.name or translator_name(args.model[0])
        path = export_saved_model(translator, args.output_dir, name, args.version)
    print(f"exported {' + '.join(args.model)} to {path}")


def translator_name(run_dir: str) -> str:
    return pathlib.Path(run_dir).resolve().name


def _quickstart(args) -> None:
    from keras_nmt.quickstart.run import quickstart

    quickstart(args.run_dir, args.set, export_dir=args.export_dir)


@contextlib.contextmanager
def _open(path: str | None, mode: str):
    """A UTF-8 text file, or stdin/stdout when `path` is None."""
    if path is None:
        yield sys.stdin if mode == "r" else sys.stdout
        return
    try:
        handle = open(path, mode, encoding="utf-8", errors="replace" if mode == "r" else "strict")
    except OSError as error:
        raise UserError(f"cannot open {path}: {error.strerror}") from None
    with handle:
        yield handle


def parser() -> argparse.ArgumentParser:
    main = argparse.ArgumentParser(prog="keras-nmt", description="Attention NMT on Keras 3.")
    main.add_argument("--version", action="version", version=keras_nmt.__version__)
    commands = main.add_subparsers(dest="command", required=True)
    overrides = dict(
        action="append", default=[], metavar="SECTION.KEY=VALUE", help="override a config value"
    )
    length_penalty = dict(
        type=float, metavar="ALPHA", help="GNMT length penalty alpha (0 = off; default: config)"
    )

    train = commands.add_parser("train", help="train (or resume training) a model")
    train.add_argument("--config", required=True, help="YAML config file")
    train.add_argument("--run-dir", required=True, help="where the model and its state go")
    train.add_argument("--set", **overrides)
    train.add_argument(
        "--init-from",
        metavar="RUN_DIR",
        help="fine-tune: start from this trained run's weights and SentencePiece models "
        "(same model config; a fresh optimizer; RUN_DIR is only read)",
    )
    train.add_argument(
        "--strategy",
        choices=STRATEGIES,
        help="tf.distribute strategy (overrides train.strategy; multi_worker reads TF_CONFIG)",
    )
    train.set_defaults(run=_train)

    models = dict(
        action="append",
        required=True,
        metavar="PATH",
        help="a run directory or an export; several run directories decode as an ensemble",
    )

    translate = commands.add_parser("translate", help="translate lines of text")
    translate.add_argument("--model", **models)
    translate.add_argument("--input", help="source file (default: stdin)")
    translate.add_argument("--output", help="output file (default: stdout)")
    translate.add_argument("--batch-size", type=int, help="sentences per batch")
    translate.add_argument("--beam-size", type=int, help="beam size (1 = greedy; default: config)")
    translate.add_argument("--length-penalty", **length_penalty)
    translate.add_argument(
        "--n-best", type=int, help="hypotheses per sentence, written as INDEX ||| TEXT ||| SCORE"
    )
    translate.add_argument(
        "--sampling-topk",
        type=int,
        metavar="K",
        help="sample each token from the K most probable (0: all) instead of searching",
    )
    translate.add_argument(
        "--sampling-temperature", type=float, metavar="T", help="sampling temperature (1)"
    )
    translate.add_argument("--seed", type=int, help="sampling seed (default: config, 0)")
    translate.add_argument(
        "--plot-attention",
        metavar="DIR",
        help="also write DIR/INDEX.png: each sentence's attention heatmap (INDEX from 0)",
    )
    translate.set_defaults(run=_translate)

    evaluate = commands.add_parser("evaluate", help="sacreBLEU BLEU, chrF (TER) and perplexity")
    evaluate.add_argument("--model", **models)
    evaluate.add_argument("--src", required=True, help="source file (plain or .gz)")
    evaluate.add_argument("--ref", required=True, help="reference file (plain or .gz)")
    evaluate.add_argument("--beam-size", type=int, help="beam size (1 = greedy; default: config)")
    evaluate.add_argument("--length-penalty", **length_penalty)
    evaluate.add_argument(
        "--lowercase", action="store_true", help="case-insensitive scores (as Multi30k papers)"
    )
    evaluate.add_argument("--ter", action="store_true", help="also sacreBLEU's TER")
    evaluate.set_defaults(run=_evaluate)

    score = commands.add_parser(
        "score", help="the score translate would give each given translation (force decoding)"
    )
    score.add_argument("--model", **models)
    score.add_argument("--src", required=True, help="source file (plain or .gz)")
    score.add_argument("--tgt", required=True, help="translations to score, line by line")
    score.add_argument("--length-penalty", **length_penalty)
    score.add_argument("--per-token", action="store_true", help="also each piece's log-probability")
    score.set_defaults(run=_score)

    average = commands.add_parser(
        "average", help="average the weights of a run's kept epochs into a new run directory"
    )
    average.add_argument(
        "--run-dir",
        required=True,
        help="a run trained with average_last_epochs or average_best_epochs",
    )
    average.add_argument("--last", type=int, help="how many epochs (default: all kept)")
    average.add_argument("--output-dir", help="the new run directory (default: RUN_DIR/averaged)")
    average.set_defaults(run=_average)

    export = commands.add_parser("export", help="export a trained model for serving")
    export.add_argument(
        "--model",
        action="append",
        required=True,
        metavar="RUN_DIR",
        help="a run directory; several export their ensemble",
    )
    export.add_argument("--format", required=True, choices=["saved_model", "tflite"])
    export.add_argument(
        "--output-dir", default="export", help="saved_model: model base paths go here"
    )
    export.add_argument("--name", help="model name (default: the run directory's name)")
    export.add_argument(
        "--version", type=int, help="version number (default: the next free integer)"
    )
    export.add_argument("--output", help="tflite: the FILE.tflite to write")
    export.add_argument(
        "--quantize",
        choices=TFLITE_QUANTIZATIONS,
        default="none",
        help="tflite: weight quantization (default: none)",
    )
    export.add_argument("--set", **overrides)
    export.set_defaults(run=_export)

    quickstart = commands.add_parser("quickstart", help="train and evaluate on the embedded corpus")
    quickstart.add_argument("--run-dir", default="runs/quickstart")
    quickstart.add_argument(
        "--export-dir", default="export", help="where the SavedModel goes (BASE/quickstart/N)"
    )
    quickstart.add_argument("--set", **overrides)
    quickstart.set_defaults(run=_quickstart)
    return main


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        args.run(args)
    except UserError as error:
        print(f"keras-nmt: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("keras-nmt: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
