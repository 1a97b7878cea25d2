"""`make bench BENCH=large PAIRS=N`: training on a corpus of N pairs (default 2,000,000).

Writes a synthetic corpus of N pairs to a temporary directory (Multi30k's training pairs
repeated when ../shared/data is there, else the quickstart corpus's; plain text, deleted
afterwards), then trains the reference model of the train part on it for `--steps`
optimizer steps (`train.max_steps`; the epoch stays the corpus's whole pass, so its batches
are counted as a real run counts them) and reports:

- the seconds from the `train` call to the end of its first training step, and what they
  went to, from the times of the run's log lines: checking the corpus files, training the
  SentencePiece models, the first tokenizing pass (which fills the cache and counts the
  batches), and the rest (model, tracing, the shuffle buffer's first fill);
- target tokens per second (the median over the steps after warm-up);
- the process's peak resident memory, its resident memory at the end, and the size of the
  cache file on disk (0 when the corpus is cached in memory).

`--set` (make: `SET=...`) changes the config, e.g. `data.memory_cache_max_pairs=3000000` to
cache 2M pairs in memory, or `data.sentencepiece_max_sentences=500000` to train
SentencePiece on the same sample at every corpus size.
"""

from __future__ import annotations

import gzip
import itertools
import pathlib
import tempfile
import time

REPO = pathlib.Path(__file__).resolve().parents[1]
MULTI30K = REPO.parent / "shared" / "data" / "multi30k"


def write_repeated_corpus(directory: pathlib.Path, pairs: int) -> str:
    """Writes `directory/train.{en,de}`: `pairs` lines, the base corpus's training pairs
    over and over. Returns the base corpus's name."""
    if MULTI30K.is_dir():
        name = "Multi30k train"
        sides = {
            lang: gzip.open(MULTI30K / f"train.{lang}.gz", "rt", encoding="utf-8").readlines()
            for lang in ("en", "de")
        }
    else:
        from keras_nmt.quickstart import corpus as default_corpus

        name = "quickstart train"
        paths = default_corpus.write_corpus(directory / "base")["train"]
        sides = {p.suffix[1:]: p.read_text("utf-8").splitlines(True) for p in paths}
    directory.mkdir(parents=True, exist_ok=True)
    for lang, lines in sides.items():
        with open(directory / f"train.{lang}", "w", encoding="utf-8") as handle:
            handle.writelines(itertools.islice(itertools.cycle(lines), pairs))
    return name


def resident_mib() -> float:
    """This process's resident memory now (VmRSS), in MiB."""
    for line in pathlib.Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def phases(started: float, lines: list[tuple[float, str]]) -> dict[str, float]:
    """Seconds per phase up to the first step, from the timed log lines of a run: the
    corpus check ends with the "training corpus" line, SentencePiece training (when the run
    trains its models) with the first "cached" line, the tokenizing pass with the "training
    data" line."""

    def at(text: str) -> float:
        return next(t for t, message in lines if text in message)

    checked, tokenizers = at("training corpus:"), at(", cached ")
    counted, first = at("training data:"), at("first training step done")
    return {
        "check the corpus files": checked - started,
        "train SentencePiece": tokenizers - checked,
        "tokenize, cache, count": counted - tokenizers,
        "model, tracing, first step": first - counted,
        "first step after start": first - started,
    }


def bench_large(pairs: int, steps: int, overrides: list[str], reference: list[str], row,
                peak_rss_mib) -> list[dict]:  # fmt: skip
    """The rows of the large part; `reference` are the reference model's config overrides,
    `row` and `peak_rss_mib` bench.py's."""
    from keras_nmt.config import Config
    from keras_nmt.training.train import train

    settings = [
        "train.epochs=1",
        f"train.max_steps={steps}",
        "train.tensorboard=false",
        "train.early_stopping_patience=null",
        "train.average_last_epochs=0",
        "train.average_best_epochs=0",
        "data.valid=null",
        *reference,
        *overrides,
    ]
    with tempfile.TemporaryDirectory(prefix="keras_nmt_large_") as directory:
        work = pathlib.Path(directory)
        base = write_repeated_corpus(work / "corpus", pairs)
        config = Config.from_yaml(
            REPO / "configs" / "multi30k_en_de.yaml", [f"data.dir={work / 'corpus'}", *settings]
        )
        lines: list[tuple[float, str]] = []
        started = time.time()
        result = train(config, work / "run", log=lambda m: lines.append((time.time(), m)))
        cache = sum(p.stat().st_size for p in (work / "run" / "cache").glob("*")) / 2**20
        resident = resident_mib()
    name = f"{pairs} pairs of {base}" + (" " + " ".join(overrides) if overrides else "")
    rows = [row("large", name, f"{k} (s)", v, "s") for k, v in phases(started, lines).items()]
    return rows + [
        row("large", name, "throughput", result.history[-1]["target_tokens_per_second"], "tok/s"),
        row("large", name, "peak RSS", peak_rss_mib(), "MiB"),
        row("large", name, "RSS at the end", resident, "MiB"),
        row("large", name, "cache file", cache, "MiB"),
    ]
