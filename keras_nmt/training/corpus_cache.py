"""Where a training run caches a tokenized corpus: in memory, or, for a corpus of more than
`data.memory_cache_max_pairs` pairs, in a file of the run directory.

A file cache is named by the corpus, this process's task and a key of what its contents
depend on (the corpus files' paths, sizes and modification times, and both tokenizers), so a
resumed run reads the cache its first pass wrote, a changed corpus or tokenizer writes a new
one, and each worker of a multi-worker run sharing one run directory writes its own. Caches
of the same corpus and task with another key are deleted: a run directory holds one per
corpus and worker.
"""

from __future__ import annotations

import hashlib
import pathlib

from keras_nmt.data.corpus import ParallelCorpus
from keras_nmt.data.tokenizer import Tokenizer
from keras_nmt.run_dir import RunDir


def cache_file(
    run: RunDir,
    name: str,
    corpus: ParallelCorpus,
    pairs: int,
    max_pairs_in_memory: int,
    tokenizers: tuple[Tokenizer, Tokenizer],
    worker: str,
) -> pathlib.Path | None:
    """The file prefix under `run.cache` where `corpus` (`pairs` pairs, called `name`, e.g.
    `train0`) is cached by `worker`, or None to cache it in memory (at most
    `max_pairs_in_memory` pairs). Older caches of the same name and worker are removed."""
    if pairs <= max_pairs_in_memory:
        return None
    path = run.cache / f"{name}-{worker}-{_key(corpus, tokenizers)}"
    run.cache.mkdir(parents=True, exist_ok=True)
    for old in run.cache.glob(f"{name}-{worker}-*"):
        if not old.name.startswith(path.name):
            old.unlink()
    return path


def _key(corpus: ParallelCorpus, tokenizers: tuple[Tokenizer, Tokenizer]) -> str:
    """A digest of the corpus files (path, size, modification time) and the tokenizers."""
    parts = [tokenizer.digest for tokenizer in tokenizers]
    for path in (corpus.source, corpus.target, corpus.tsv):
        if path is not None:
            stat = pathlib.Path(path).stat()
            parts.append(f"{pathlib.Path(path).resolve()}:{stat.st_size}:{stat.st_mtime_ns}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]
