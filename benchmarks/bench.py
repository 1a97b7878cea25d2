"""`make bench`: measures keras-nmt on this machine and prints a table.

Parts (`--part`, or `make bench BENCH=...`):
  train   training throughput: non-PAD target tokens per second, the median over timed steps
          after warm-up (each step timed by a callback: the wall time of a whole `fit` call can
          include seconds of teardown), on configs/multi30k_en_de.yaml when ../shared/data is
          there, else on the quickstart corpus; and the process's peak resident memory.

Decoding and export rows come with the issues that build those parts.
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


def machine() -> dict:
    import tensorflow as tf

    return {
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": __import__("keras").__version__,
        "platform": platform.platform(),
    }


def bench_train(steps: int) -> list[dict]:
    from keras_nmt import default_corpus
    from keras_nmt.config import Config
    from keras_nmt.quickstart import quickstart_config
    from keras_nmt.training import train

    work = pathlib.Path(tempfile.mkdtemp(prefix="keras_nmt_bench_"))
    measure = [
        "train.epochs=1",
        f"train.steps_per_epoch={steps}",
        "train.tensorboard=false",
        "train.early_stopping_patience=null",
        "data.valid=null",
    ]
    if MULTI30K.is_dir():
        name = "multi30k_en_de"
        config = Config.from_yaml(
            REPO / "configs" / "multi30k_en_de.yaml", [f"data.dir={MULTI30K}", *measure]
        )
    else:
        name = "quickstart"
        config = quickstart_config(work / "quickstart", measure)
        default_corpus.write_corpus(config.data.dir)
    result = train(config, work / "run", log=lambda _: None)
    rate = result.history[-1]["target_tokens_per_second"]
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return [
        {
            "part": "train",
            "config": name,
            "metric": "throughput",
            "value": rate,
            "unit": "target tok/s",
        },
        {"part": "train", "config": name, "metric": "peak RSS", "value": peak_mib, "unit": "MiB"},
    ]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--part", choices=["all", "train"], default="all")
    parser.add_argument(
        "--steps", type=int, default=60, help="training steps to time (first 5 are warm-up)"
    )
    parser.add_argument("--json", help="also write the rows and the machine to this JSON file")
    args = parser.parse_args(argv)
    rows = []
    if args.part in ("all", "train"):
        rows += bench_train(args.steps)
    info = machine()
    print(
        f"machine: {info['cores']} cores, TensorFlow {info['tensorflow']}, Keras {info['keras']}, "
        f"Python {info['python']}"
    )
    print(f"| {'part':<6} | {'config':<15} | {'metric':<11} | {'value':>10} | unit |")
    print(f"|{'-' * 8}|{'-' * 17}|{'-' * 13}|{'-' * 12}|------|")
    for row in rows:
        cells = f"{row['part']:<6} | {row['config']:<15} | {row['metric']:<11}"
        print(f"| {cells} | {row['value']:>10.0f} | {row['unit']} |")
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps({"machine": info, "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
