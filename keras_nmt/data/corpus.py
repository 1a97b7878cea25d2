"""Parallel corpora on disk: two line-aligned files (plain or gzip), or one TSV file.

A `ParallelCorpus` names its files and streams them; nothing here holds a corpus in memory.
`check()` makes one streaming pass that counts lines, checks UTF-8 and the TSV layout, and
raises `DataError` naming the files and counts when the two sides are misaligned.
"""

from __future__ import annotations

import dataclasses
import gzip
import pathlib
from collections.abc import Iterator

import tensorflow as tf

from keras_nmt.errors import DataError


def _open_binary(path: pathlib.Path):
    return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")


def _compression(path: pathlib.Path) -> str:
    return "GZIP" if path.suffix == ".gz" else ""


def _decoded_lines(path: pathlib.Path) -> Iterator[str]:
    """Yields the lines of `path` without their line ending, as text; DataError on bad UTF-8."""
    try:
        with _open_binary(path) as handle:
            for number, raw in enumerate(handle, start=1):
                try:
                    yield raw.decode("utf-8").rstrip("\r\n")
                except UnicodeDecodeError as error:
                    raise DataError(f"{path}:{number}: not valid UTF-8 ({error.reason})") from None
    except (OSError, EOFError) as error:
        if isinstance(error, FileNotFoundError):
            raise DataError(f"corpus file not found: {path}") from None
        raise DataError(f"{path}: cannot be read: {error}") from None


@dataclasses.dataclass(frozen=True)
class ParallelCorpus:
    """A parallel corpus: `source` and `target` files, or a single `tsv` file."""

    source: pathlib.Path | None = None
    target: pathlib.Path | None = None
    tsv: pathlib.Path | None = None

    def __post_init__(self):
        if (self.tsv is None) == (self.source is None or self.target is None):
            raise ValueError(
                "ParallelCorpus: expected either source and target files, or one tsv file; got "
                f"source={self.source}, target={self.target}, tsv={self.tsv}"
            )

    @classmethod
    def from_prefix(
        cls, directory: str | pathlib.Path, prefix: str, source_lang: str, target_lang: str
    ) -> ParallelCorpus:
        """Finds `prefix.<lang>[.gz]` for both languages, or else `prefix.tsv[.gz]`."""
        base = pathlib.Path(directory) / prefix
        if not base.parent.is_dir():
            raise DataError(f"corpus directory not found: {base.parent}")

        def first_existing(*names):
            return next((p for p in map(pathlib.Path, names) if p.is_file()), None)

        source = first_existing(f"{base}.{source_lang}", f"{base}.{source_lang}.gz")
        target = first_existing(f"{base}.{target_lang}", f"{base}.{target_lang}.gz")
        if source and target:
            return cls(source=source, target=target)
        tsv = first_existing(f"{base}.tsv", f"{base}.tsv.gz")
        if tsv:
            return cls(tsv=tsv)
        raise DataError(
            f"corpus {prefix!r} not found: expected {base}.{source_lang}[.gz] and "
            f"{base}.{target_lang}[.gz], or {base}.tsv[.gz]"
        )

    @property
    def name(self) -> str:
        return str(self.tsv) if self.tsv else f"{self.source} / {self.target}"

    def check(self) -> int:
        """Streams the files once; returns the number of pairs.

        Raises:
            DataError: a file is missing or not UTF-8, the two files have different line
                counts (both files and counts named), or a TSV line has no single tab.
        """
        if self.tsv is not None:
            count = 0
            for count, line in enumerate(_decoded_lines(self.tsv), start=1):
                if line.count("\t") != 1:
                    raise DataError(
                        f"{self.tsv}:{count}: expected one tab between source and target, "
                        f"found {line.count(chr(9))}"
                    )
            return count
        source_count = sum(1 for _ in _decoded_lines(self.source))
        target_count = sum(1 for _ in _decoded_lines(self.target))
        if source_count != target_count:
            raise DataError(
                f"misaligned corpus: {self.source} has {source_count} lines but "
                f"{self.target} has {target_count}"
            )
        return source_count

    def source_lines(self) -> Iterator[str]:
        """Streams the source side as Python strings (used to train SentencePiece)."""
        if self.tsv is not None:
            return (line.split("\t", 1)[0] for line in _decoded_lines(self.tsv))
        return _decoded_lines(self.source)

    def target_lines(self) -> Iterator[str]:
        """Streams the target side as Python strings (used to train SentencePiece)."""
        if self.tsv is not None:
            return (line.split("\t", 1)[1] for line in _decoded_lines(self.tsv))
        return _decoded_lines(self.target)

    def dataset(self) -> tf.data.Dataset:
        """A tf.data stream of `(source, target)` string scalars, whitespace-stripped."""
        if self.tsv is not None:
            lines = tf.data.TextLineDataset(str(self.tsv), compression_type=_compression(self.tsv))

            def split(line):
                parts = tf.strings.split(line, "\t", maxsplit=1)
                parts = tf.concat([parts, tf.constant(["", ""])], axis=0)  # a tab-less line
                return parts[0], parts[1]

            pairs = lines.map(split, num_parallel_calls=tf.data.AUTOTUNE)
        else:
            pairs = tf.data.Dataset.zip(
                tf.data.TextLineDataset(
                    str(self.source), compression_type=_compression(self.source)
                ),
                tf.data.TextLineDataset(
                    str(self.target), compression_type=_compression(self.target)
                ),
            )
        return pairs.map(
            lambda s, t: (tf.strings.strip(s), tf.strings.strip(t)),
            num_parallel_calls=tf.data.AUTOTUNE,
        )
