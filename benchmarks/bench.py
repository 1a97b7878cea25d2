"""`make bench`: measures keras-nmt on this machine and prints a table.

Parts (`--part`, or `make bench BENCH=...`):
  train   training throughput: non-PAD target tokens per second, the median over timed steps
          after warm-up (each step timed by a callback: the wall time of a whole training call
          can include seconds of teardown), for the reference model (configs/multi30k_en_de.yaml
          with 8k vocabularies and an untied generator, as OpenNMT-tf was measured) on Multi30k
          when ../shared/data is there, else on the quickstart corpus; and the process's peak
          resident memory.
          `--set section.key=value` (make: `SET="train.accumulation_steps=2 ..."`) changes the
          config, e.g. to compare mixed precision or accumulation. `--progress` (make:
          `PROGRESS=1`) trains with the progress bar drawn (on stdout), to measure its cost:
          its per-step update runs inside each timed step.

  decode  for a trained run directory (`--model`, default runs/multi30k_en_de, else
          runs/quickstart): validation BLEU (sacreBLEU, cased) with greedy search and with
          beam 5, and decoding throughput in sentences and target tokens (pieces + EOS) per
          second at batch 1 (the first 100 validation sentences one at a time) and batch 64
          (the whole validation set), after a warm-up call.

  export  for each trained run directory (`--model`, default runs/quickstart and
          runs/multi30k_en_de where present): exports a SavedModel, then in a clean process
          (TensorFlow and tensorflow-text only, as a model server has) measures its size on
          disk, load time, `serving_default` latency p50/p95 for one sentence (the first 100
          validation sentences) and per batch of 64 (the validation set), sentences per
          and target tokens per second at batch 64 for beam (`serving_default`) and greedy
          (`translate_greedy`), and the clean process's peak resident memory.

  ensemble  for two or more run directories (`--ensemble RUN_DIR`, repeated; make:
          `ENSEMBLE="A B"`): sentences per second on the validation set at batch 64 with
          greedy search and beam 5, for the first model alone and for the ensemble of all,
          after a warm-up call; and the seconds `score` takes for the validation pairs (the
          references as translations), one model and the ensemble.

  large   training on a synthetic corpus of `--pairs` pairs (make: `PAIRS=...`, default
          2,000,000): the time to the first step and where it went, target tokens per
          second, peak and final resident memory, the cache file's size (see
          benchmarks/large_corpus.py).

  tflite  for the same run directories, each of `--quantize none|float16|dynamic_range`:
          the .tflite file's size, single-sentence latency p50/p95 of `translate` (the
          exported beam search) and `translate_greedy` over the first 100 validation
          sentences, in the LiteRT interpreter, and the sacreBLEU of `translate` on the
          quickstart's test split (quickstart) or the validation set (Multi30k).
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import platform
import resource
import sys
import tempfile

import keras_nmt  # noqa: F401  (sets the Keras backend)

REPO = pathlib.Path(__file__).resolve().parents[1]
MULTI30K = REPO.parent / "shared" / "data" / "multi30k"

# The reference model is the Multi30k recipe's without what was tuned for quality: 8k
# SentencePiece vocabularies and a generator of its own (the sizes OpenNMT-tf was measured
# with), an encoder of 2 x 128 and no layer normalization.
REFERENCE = [
    "data.source_vocab_size=8000",
    "data.target_vocab_size=8000",
    "model.tie_embeddings=false",
    "model.encoder_units=256",
    "model.layer_norm=false",
]


def machine() -> dict:
    import tensorflow as tf

    return {
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": __import__("keras").__version__,
        "platform": platform.platform(),
    }


def row(part: str, config: str, metric: str, value: float, unit: str) -> dict:
    """One line of the table (and of the JSON)."""
    return {"part": part, "config": config, "metric": metric, "value": value, "unit": unit}


def peak_rss_mib() -> float:
    """This process's peak resident memory so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bench_train(steps: int, overrides: list[str] = (), progress: bool = False) -> list[dict]:
    from keras_nmt.config import Config
    from keras_nmt.quickstart import corpus as default_corpus
    from keras_nmt.quickstart.run import quickstart_config
    from keras_nmt.training.train import train

    measure = [
        "train.epochs=1",
        f"train.steps_per_epoch={steps}",
        "train.tensorboard=false",
        "train.early_stopping_patience=null",
        "data.valid=null",
        *overrides,
    ]
    with tempfile.TemporaryDirectory(prefix="keras_nmt_bench_") as directory:
        work = pathlib.Path(directory)
        if MULTI30K.is_dir():
            name = "reference: multi30k_en_de, 8k untied"
            config = Config.from_yaml(
                REPO / "configs" / "multi30k_en_de.yaml",
                [f"data.dir={MULTI30K}", *REFERENCE, *measure],
            )
        else:
            name = "quickstart"
            config = quickstart_config(work / "quickstart", measure)
            default_corpus.write_corpus(config.data.dir)
        result = train(config, work / "run", log=lambda _: None, progress=progress)
    rate = result.history[-1]["target_tokens_per_second"]
    if overrides:
        name += " " + " ".join(overrides)
    if progress:
        name += " (progress bar)"
    return [
        row("train", name, "throughput", rate, "target tok/s"),
        row("train", name, "peak RSS", peak_rss_mib(), "MiB"),
    ]


def default_model() -> pathlib.Path | None:
    for name in ("multi30k_en_de", "quickstart"):
        if (REPO / "runs" / name / "model.weights.h5").is_file():
            return REPO / "runs" / name
    return None


def target_tokens(tokenizer, translations: list[str]) -> int:
    """Target tokens the decoder produced for `translations`: their SentencePiece pieces
    (the run's target `Tokenizer`) plus one EOS each (what training counts as non-PAD target
    tokens)."""
    import tensorflow as tf

    pieces = tokenizer.tokenize(tf.constant(translations, tf.string)).flat_values
    return int(tf.size(pieces)) + len(translations)


def bench_decode(model_dir: pathlib.Path) -> list[dict]:
    import time

    from keras_nmt.data.corpus import ParallelCorpus
    from keras_nmt.evaluation.bleu import score
    from keras_nmt.inference.loading import load

    base = load(model_dir)
    data = base.config.data
    valid = ParallelCorpus.from_prefix(data.dir, data.valid, data.source_lang, data.target_lang)
    sources, references = list(valid.source_lines()), list(valid.target_lines())
    rows = []
    for beam in (1, 5):
        translator = base.with_decoding(beam_size=beam)
        name = "greedy" if beam == 1 else f"beam {beam}"
        translator.translate(sources[:64], batch_size=64)  # warm-up: tracing
        start = time.perf_counter()
        hypotheses = translator.translate(sources, batch_size=64)
        seconds64 = time.perf_counter() - start
        start = time.perf_counter()
        singles = translator.translate(sources[:100], batch_size=1)
        seconds1 = time.perf_counter() - start
        bleu = score(hypotheses, references).bleu
        rows += [
            row("decode", model_dir.name, f"{name} BLEU", bleu, "val BLEU"),
            row("decode", model_dir.name, f"{name} b64", len(sources) / seconds64, "sent/s"),
            row(
                "decode",
                model_dir.name,
                f"{name} b64",
                target_tokens(base.target_tokenizer, hypotheses) / seconds64,
                "target tok/s",
            ),
            row("decode", model_dir.name, f"{name} b1", 100 / seconds1, "sent/s"),
            row(
                "decode",
                model_dir.name,
                f"{name} b1",
                target_tokens(base.target_tokenizer, singles) / seconds1,
                "target tok/s",
            ),
        ]
    rows.append(row("decode", model_dir.name, "peak RSS", peak_rss_mib(), "MiB"))
    return rows


def bench_ensemble(model_dirs: list[pathlib.Path]) -> list[dict]:
    import time

    from keras_nmt.data.corpus import ParallelCorpus
    from keras_nmt.inference.translator import Translator

    members = [Translator.load_run_dir(path) for path in model_dirs]
    data = members[0].config.data
    valid = ParallelCorpus.from_prefix(data.dir, data.valid, data.source_lang, data.target_lang)
    sources, references = list(valid.source_lines()), list(valid.target_lines())
    name = " + ".join(path.name for path in model_dirs)
    rows = []
    ensemble = Translator.ensemble(members)
    for label, translator in (("one model", members[0]), ("ensemble", ensemble)):
        for beam in (1, 5):
            decoding = translator.with_decoding(beam_size=beam)
            strategy = "greedy" if beam == 1 else f"beam {beam}"
            decoding.translate(sources[:64], batch_size=64)  # warm-up: tracing
            start = time.perf_counter()
            decoding.translate(sources, batch_size=64)
            seconds = time.perf_counter() - start
            metric = f"{label}, {strategy} b64"
            rows.append(row("ensemble", name, metric, len(sources) / seconds, "sent/s"))
        translator.score(sources[:64], references[:64], batch_size=64)  # warm-up
        start = time.perf_counter()
        translator.score(sources, references, batch_size=64)
        metric = f"{label}, score {len(sources)} pairs b64"
        rows.append(row("ensemble", name, metric, time.perf_counter() - start, "s"))
    return rows


def export_models() -> list[pathlib.Path]:
    names = ("quickstart", "multi30k_en_de")
    return [REPO / "runs" / n for n in names if (REPO / "runs" / n / "model.weights.h5").is_file()]


def bench_export(model_dir: pathlib.Path) -> list[dict]:
    import subprocess

    from keras_nmt.data.corpus import ParallelCorpus
    from keras_nmt.exporting.saved_model import export_saved_model
    from keras_nmt.inference.loading import load

    translator = load(model_dir)
    data = translator.config.data
    valid = ParallelCorpus.from_prefix(data.dir, data.valid, data.source_lang, data.target_lang)
    name = model_dir.name
    with tempfile.TemporaryDirectory(prefix="keras_nmt_bench_") as directory:
        path = export_saved_model(translator, directory, name)
        size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20
        sentences = pathlib.Path(directory) / "sentences.json"
        sentences.write_text(json.dumps(list(valid.source_lines())), encoding="utf-8")
        script = pathlib.Path(__file__).with_name("serving_latency.py")
        output = subprocess.run(
            [sys.executable, str(script), str(path), str(sentences)],
            check=True, capture_output=True, text=True, cwd=directory,
        ).stdout  # fmt: skip
    measured = json.loads(output.strip().splitlines()[-1])
    beam, greedy = measured["serving_default"], measured["translate_greedy"]
    tokenizer = translator.target_tokenizer
    return [
        row("export", name, "size", size, "MiB"),
        row("export", name, "load", measured["load_s"], "s"),
        row("export", name, "b1 p50", beam["b1_ms"]["p50"], "ms"),
        row("export", name, "b1 p95", beam["b1_ms"]["p95"], "ms"),
        row("export", name, "b64 p50", beam["b64_ms"]["p50"], "ms"),
        row("export", name, "b64 p95", beam["b64_ms"]["p95"], "ms"),
        row("export", name, "beam b64", beam["b64_sent_per_s"], "sent/s"),
        row(
            "export",
            name,
            "beam b64",
            target_tokens(tokenizer, beam["translations"]) / beam["b64_seconds"],
            "target tok/s",
        ),
        row("export", name, "greedy b64", greedy["b64_sent_per_s"], "sent/s"),
        row(
            "export",
            name,
            "greedy b64",
            target_tokens(tokenizer, greedy["translations"]) / greedy["b64_seconds"],
            "target tok/s",
        ),
        row("export", name, "greedy b1 p50", greedy["b1_ms"]["p50"], "ms"),
        row("export", name, "peak RSS", measured["peak_rss_mib"], "MiB"),
    ]


def bench_tflite(model_dir: pathlib.Path) -> list[dict]:
    import time

    import numpy as np

    from keras_nmt.config import TFLITE_QUANTIZATIONS as QUANTIZATIONS
    from keras_nmt.data.corpus import ParallelCorpus
    from keras_nmt.evaluation.bleu import score
    from keras_nmt.exporting.tflite import export_tflite
    from keras_nmt.inference.loading import load
    from keras_nmt.inference.tflite import TFLiteTranslator

    translator = load(model_dir)
    data = translator.config.data
    split = data.test if model_dir.name == "quickstart" else data.valid
    corpus = ParallelCorpus.from_prefix(data.dir, split, data.source_lang, data.target_lang)
    sources, references = list(corpus.source_lines()), list(corpus.target_lines())
    name, rows = model_dir.name, []
    with tempfile.TemporaryDirectory(prefix="keras_nmt_bench_") as directory:
        for quantize in QUANTIZATIONS:
            path = export_tflite(
                translator, pathlib.Path(directory) / f"{quantize}.tflite", quantize
            )
            lite = TFLiteTranslator.load(path)
            rows.append(row("tflite", name, f"{quantize} size", path.stat().st_size / 2**20, "MiB"))
            for decoding in (lite, lite.with_decoding(beam_size=1)):
                label = "beam" if decoding.signature == "translate" else "greedy"
                decoding.translate_one(sources[0])  # warm-up
                times = []
                for sentence in sources[:100]:
                    start = time.perf_counter()
                    decoding.translate_one(sentence)
                    times.append((time.perf_counter() - start) * 1000)
                for percentile in (50, 95):
                    value = float(np.percentile(times, percentile))
                    rows.append(
                        row("tflite", name, f"{quantize} {label} p{percentile}", value, "ms")
                    )
            bleu = score(lite.translate(sources), references).bleu
            rows.append(row("tflite", name, f"{quantize} BLEU", bleu, f"{split} BLEU"))
    return rows


def run_part(part: str, args) -> list[dict]:
    """Runs `--part part` in a child process and returns its rows."""
    import subprocess

    with tempfile.TemporaryDirectory() as directory:
        output = pathlib.Path(directory) / "rows.json"
        command = [sys.executable, __file__, "--part", part, "--steps", str(args.steps)]
        command += ["--json", str(output)] + (["--model", args.model] if args.model else [])
        command += [f"--set={override}" for override in args.set]
        command += ["--progress"] if args.progress else []
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        return json.loads(output.read_text())["rows"] if output.is_file() else []


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--part",
        choices=["all", "train", "decode", "export", "tflite", "ensemble", "large"],
        default="all",
    )
    parser.add_argument(
        "--ensemble",
        action="append",
        default=[],
        metavar="RUN_DIR",
        help="ensemble part: the run directories (two or more)",
    )
    parser.add_argument("--model", help="run directory for the decode and export parts")
    parser.add_argument(
        "--steps", type=int, default=60, help="training steps to time (first 5 are warm-up)"
    )
    parser.add_argument(
        "--pairs", type=int, default=2_000_000, help="large part: the corpus's pairs"
    )
    parser.add_argument("--json", help="also write the rows and the machine to this JSON file")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="config override for the train and large parts (e.g. train.mixed_precision=bfloat16)",
    )
    parser.add_argument(
        "--progress", action="store_true", help="train part: draw the progress bar (its cost)"
    )
    args = parser.parse_args(argv)
    rows = []
    if args.part == "all":
        # Each part in a process of its own, so that each peak RSS is that part's alone.
        for part in ("train", "decode", "export", "tflite"):
            rows += run_part(part, args)
    elif args.part == "train":
        rows += bench_train(args.steps, args.set, args.progress)
    elif args.part == "large":
        from large_corpus import bench_large  # beside this script

        rows += bench_large(args.pairs, args.steps, args.set, REFERENCE, row, peak_rss_mib)
    elif args.part == "ensemble":
        if len(args.ensemble) < 2:
            parser.error("--part ensemble needs two or more --ensemble RUN_DIR")
        rows += bench_ensemble([pathlib.Path(path) for path in args.ensemble])
    elif args.part in ("export", "tflite"):
        models = [pathlib.Path(args.model)] if args.model else export_models()
        if not models:
            print(f"{args.part}: no trained model (train one, or pass --model RUN_DIR); skipped")
        for model in models:
            rows += bench_export(model) if args.part == "export" else bench_tflite(model)
    else:
        model = pathlib.Path(args.model) if args.model else default_model()
        if model is None:
            print("decode: no trained model (train one, or pass --model RUN_DIR); skipped")
        else:
            rows += bench_decode(model)
    info = machine()
    print(
        f"machine: {info['cores']} cores, TensorFlow {info['tensorflow']}, Keras {info['keras']}, "
        f"Python {info['python']}"
    )
    print(f"| {'part':<6} | {'config':<15} | {'metric':<24} | {'value':>10} | unit |")
    print(f"|{'-' * 8}|{'-' * 17}|{'-' * 26}|{'-' * 12}|------|")
    for line in rows:
        cells = f"{line['part']:<6} | {line['config']:<15} | {line['metric']:<24}"
        print(f"| {cells} | {line['value']:>10.1f} | {line['unit']} |")
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps({"machine": info, "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
