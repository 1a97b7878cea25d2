"""SentencePiece subword models: trained with `sentencepiece`, applied inside the TF graph.

Training uses the `sentencepiece` package on a stream of sentences. Tokenizing and
detokenizing use `tensorflow_text.FastSentencepieceTokenizer`, which keeps the model as a
graph constant: it survives SavedModel export and reload, and converts to TFLite. (The older
`tensorflow_text.SentencepieceTokenizer` does not: two of them in one SavedModel collapse into
one after reload, tensorflow/text#1304.)

The special ids are fixed for every model: PAD = 0, BOS = 1, EOS = 2, UNK = 3.
"""

from __future__ import annotations

import hashlib
import io
import os
import pathlib
from collections.abc import Iterable

import sentencepiece
import tensorflow as tf
import tensorflow_text

from keras_nmt.errors import UserError
from keras_nmt.special_ids import BOS_ID, EOS_ID, PAD_ID, UNK_ID


def train_sentencepiece(
    sentences: Iterable[str],
    path: str | pathlib.Path,
    vocab_size: int,
    model_type: str = "unigram",
    max_sentences: int = 1_000_000,
) -> pathlib.Path:
    """Trains a SentencePiece model on `sentences` and writes it to `path`.

    `vocab_size` is an upper bound: a small corpus that cannot fill it gets a smaller
    vocabulary instead of an error.
    """
    model = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=(s for s in sentences if s.strip()),
        model_writer=model,
        vocab_size=vocab_size,
        model_type=model_type,
        hard_vocab_limit=False,
        character_coverage=1.0,
        input_sentence_size=max_sentences,
        shuffle_input_sentence=True,
        pad_id=PAD_ID,
        bos_id=BOS_ID,
        eos_id=EOS_ID,
        unk_id=UNK_ID,
        num_threads=2,
        minloglevel=2,
    )
    return write_model(path, model.getvalue())


def write_model(path: str | pathlib.Path, proto: bytes) -> pathlib.Path:
    """Writes a serialized model to `path` atomically (a temporary file, then a rename):
    another process (a multi-worker run's other workers) may be waiting for it."""
    path = pathlib.Path(path)
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    temporary.write_bytes(proto)
    os.replace(temporary, path)
    return path


class Tokenizer(tf.Module):
    """In-graph SentencePiece tokenizer for one language.

    Args:
        model_proto: the serialized SentencePiece model (the bytes of a `.model` file).
    """

    def __init__(self, model_proto: bytes, name: str | None = None):
        super().__init__(name=name)
        processor = sentencepiece.SentencePieceProcessor(model_proto=model_proto)
        if (processor.pad_id(), processor.bos_id(), processor.eos_id(), processor.unk_id()) != (
            PAD_ID,
            BOS_ID,
            EOS_ID,
            UNK_ID,
        ):
            raise UserError(
                "SentencePiece model: expected special ids pad=0, bos=1, eos=2, unk=3, got "
                f"pad={processor.pad_id()}, bos={processor.bos_id()}, "
                f"eos={processor.eos_id()}, unk={processor.unk_id()}"
            )
        self.vocab_size = processor.vocab_size()
        self.pieces = [processor.id_to_piece(i) for i in range(self.vocab_size)]
        # Two tokenizers with the same digest split text into the same ids.
        self.digest = hashlib.sha256(model_proto).hexdigest()
        self._tokenizer = tensorflow_text.FastSentencepieceTokenizer(model_proto)

    @classmethod
    def load(cls, path: str | pathlib.Path) -> Tokenizer:
        path = pathlib.Path(path)
        if not path.is_file():
            raise UserError(f"SentencePiece model not found: {path}")
        return cls(path.read_bytes(), name=path.stem)

    def tokenize(self, text: tf.Tensor) -> tf.RaggedTensor:
        """Strings of shape `(batch,)` to int32 ids of shape `(batch, None)` (ragged)."""
        return tf.cast(self._tokenizer.tokenize(text), tf.int32)

    def detokenize(self, ids: tf.RaggedTensor) -> tf.Tensor:
        """Ragged ids of shape `(batch, None)` to strings of shape `(batch,)`."""
        return self._tokenizer.detokenize(ids)
