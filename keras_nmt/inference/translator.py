"""`Translator`: a trained model in process, raw text in, translations out, with tokenization
and decoding in one graph.

`Translator.translate_text` is a `tf.function` over a string batch: tokenize, truncate to
`export.max_input_tokens` (EOS included), append EOS, encode once, decode, drop everything
from EOS on, detokenize. Each Translator traces it once (its decoding settings are constants
of the graph); the SavedModel export serves the same function.

It is the `TextTranslator` of a run directory (`Translator.load_run_dir`).
"""

from __future__ import annotations

import pathlib
from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from keras_nmt.config import Config
from keras_nmt.data.tokenizer import Tokenizer
from keras_nmt.decoding import forbid_tokens, search
from keras_nmt.errors import UserError
from keras_nmt.inference.text_translator import TextTranslator
from keras_nmt.models.losses import token_losses
from keras_nmt.models.seq2seq import Seq2Seq
from keras_nmt.run_dir import RunDir
from keras_nmt.special_ids import BOS_ID, EOS_ID, PAD_ID


def max_decode_lengths(source_lengths, decode) -> tf.Tensor:
    """Per sentence, the most target tokens (EOS included) to emit: `ratio * source length +
    offset`, capped at `decode.max_length`; source lengths `(batch,)` count the EOS."""
    relative = tf.math.ceil(decode.max_length_ratio * tf.cast(source_lengths, tf.float32))
    return tf.minimum(tf.cast(relative, tf.int32) + decode.max_length_offset, decode.max_length)


class Translator(tf.Module, TextTranslator):
    """A trained model and its two tokenizers.

    Args:
        model: a built `Seq2Seq` with its weights.
        source_tokenizer, target_tokenizer: the run's tokenizers.
        config: the run's configuration (its `decode` and `export` sections are used).
    """

    def __init__(
        self,
        model: Seq2Seq,
        source_tokenizer: Tokenizer,
        target_tokenizer: Tokenizer,
        config: Config,
    ):
        super().__init__(name="translator")
        self.model = model
        self.source_tokenizer = source_tokenizer
        self.target_tokenizer = target_tokenizer
        self.config = config

    n_best = property(lambda self: self.config.decode.n_best)
    batch_size = property(lambda self: self.config.decode.batch_size)

    @classmethod
    def load_run_dir(cls, path: str | pathlib.Path) -> Translator:
        """Loads a run directory (config.yaml, the SentencePiece models, model.weights.h5)."""
        run = RunDir(path)
        if not run.path.is_dir():
            raise UserError(f"model not found: {run.path}")
        if not run.config.is_file() or not run.weights.is_file():
            raise UserError(
                f"{run.path} holds no trained model (expected {run.config.name} and "
                f"{run.weights.name}; is training finished?)"
            )
        config = Config.from_yaml(run.config)
        source_tokenizer = Tokenizer.load(run.source_model)
        target_tokenizer = Tokenizer.load(run.target_model)
        model = Seq2Seq.from_model_config(
            config.model, source_tokenizer.vocab_size, target_tokenizer.vocab_size
        )
        model.build()
        model.load_weights(run.weights)
        return cls(model, source_tokenizer, target_tokenizer, config)

    def encode_text(self, text: tf.Tensor) -> tf.Tensor:
        """Strings `(batch,)` -> padded source ids `(batch, S)`, each row truncated and ended
        with EOS; an empty or whitespace-only string becomes `[EOS]`."""
        limit = self.config.export.max_input_tokens - 1
        ids = self.source_tokenizer.tokenize(text)
        if text.shape[0] == 1:
            # One sentence: no ragged ops (they are not TFLite builtins).
            return tf.concat([ids.flat_values[:limit], [EOS_ID]], axis=0)[None, :]
        eos = tf.fill([ids.nrows(), 1], EOS_ID)
        return tf.concat([ids[:, :limit], eos], axis=1).to_tensor()

    def pieces(self, ids: tf.Tensor, tokenizer: Tokenizer) -> tf.Tensor:
        """Ids `(batch, L)` -> their SentencePiece pieces `(batch, L)`, "" for PAD."""
        table = tf.constant(tokenizer.pieces, tf.string)
        return tf.where(ids == PAD_ID, "", tf.gather(table, ids))

    def with_decoding(
        self,
        beam_size: int | None = None,
        n_best: int | None = None,
        length_penalty: float | None = None,
    ) -> Translator:
        """The same model with other decoding settings (validated like the config)."""
        overrides = [f"decode.beam_size={beam_size}"] if beam_size is not None else []
        overrides += [f"decode.n_best={n_best}"] if n_best is not None else []
        if length_penalty is not None:
            overrides.append(f"decode.length_penalty={length_penalty}")
        config = self.config.replace(overrides) if overrides else self.config
        return Translator(self.model, self.source_tokenizer, self.target_tokenizer, config)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def translate_text(self, text):
        """`translate_graph` over a batch of any size, as one `tf.function`."""
        return self.translate_graph(text)

    def decode(self, source: tf.Tensor):
        """Source ids `(batch, S)` (each ended with EOS, then PAD) -> a `BeamResult` of the
        configured decoding; a source of EOS alone decodes to nothing. To be traced."""
        decode = self.config.decode
        source_lengths = tf.reduce_sum(tf.cast(source > 0, tf.int32), axis=1)
        max_lengths = tf.where(source_lengths > 1, max_decode_lengths(source_lengths, decode), 0)
        state = self.model.initial_decoding_state(source)
        start = tf.fill([tf.shape(source)[0]], BOS_ID)
        step = forbid_tokens(self.model.step, [PAD_ID, BOS_ID])
        return search(
            step, start, state, EOS_ID, max_lengths, decode.beam_size, decode.length_penalty,
            decode.n_best,
        )  # fmt: skip

    def translate_ids_graph(self, source_ids):
        """One sentence's SentencePiece ids `(1, S)` (no EOS; truncated like text) -> a dict:
        `target_ids` `(1, T)` int32, the best hypothesis without EOS, and `score` `(1,)`. For
        apps that tokenize themselves; to be traced."""
        limit = self.config.export.max_input_tokens - 1
        source = tf.concat([source_ids[0, :limit], [EOS_ID]], axis=0)[None, :]
        result = self.decode(source)
        return {
            "target_ids": result.tokens[:, 0, : result.lengths[0, 0]],
            "score": result.scores[:, 0],
        }

    def translate_graph(self, text):
        """Translates `text` `(batch,)` with the configured decoding (`config.decode`); to be
        traced. With a static batch size (e.g. 1 for TFLite) every shape stays static.

        Returns:
            A dict: `translation` `(batch,)` string and `score` `(batch,)` float32 of the
            best hypothesis (its log-probability over GNMT's length penalty);
            `translations` `(batch, n_best)` and `scores` `(batch, n_best)`, best first;
            `attention` `(batch, L, S)` float32, the best hypothesis's attention weights:
            row t is target token t's distribution over the source tokens; `source_tokens`
            `(batch, S)` and `target_tokens` `(batch, L)` are those tokens' SentencePiece pieces
            (EOS is "</s>"; "" pads, and its rows and columns of `attention` are 0).
            An input with no tokens translates to "" with score 0. An empty batch gives
            empty outputs.
        """
        static_batch = text.shape[0]
        count = tf.shape(text)[0]
        if static_batch is None:
            # The Keras LSTM fails on an empty batch: decode one empty string instead, then
            # drop it.
            text = tf.cond(count > 0, lambda: text, lambda: tf.constant([""]))
        source = tf.ensure_shape(self.encode_text(text), [static_batch, None])
        result = self.decode(source)
        batch, n_best = tf.shape(result.tokens)[0], tf.shape(result.tokens)[1]
        flat_tokens = tf.reshape(result.tokens, [batch * n_best, -1])
        flat_lengths = tf.reshape(result.lengths, [-1])
        in_hypothesis = tf.sequence_mask(flat_lengths, tf.shape(flat_tokens)[1])
        hypotheses = tf.RaggedTensor.from_row_lengths(
            tf.boolean_mask(flat_tokens, in_hypothesis), flat_lengths
        )
        translations = tf.reshape(self.target_tokenizer.detokenize(hypotheses), [batch, n_best])
        outputs = {
            "translation": translations[:, 0],
            "score": result.scores[:, 0],
            "translations": translations,
            "scores": result.scores,
            "attention": result.attention,
            "source_tokens": self.pieces(source, self.source_tokenizer),
            "target_tokens": self.pieces(result.tokens[:, 0], self.target_tokenizer),
        }
        if static_batch is None:
            outputs = {key: value[:count] for key, value in outputs.items()}
        return outputs

    @tf.function(
        input_signature=[tf.TensorSpec([None], tf.string), tf.TensorSpec([None], tf.string)]
    )
    def reference_nll_graph(self, text, reference):
        """The summed NLL of `reference` `(batch,)` given `text` `(batch,)` under the model
        (teacher forcing, EOS included) and the number of reference tokens."""
        target = self.target_tokenizer.tokenize(reference)
        rows = target.nrows()
        inputs = {
            "source": self.encode_text(text),
            "decoder_input": tf.concat([tf.fill([rows, 1], BOS_ID), target], 1).to_tensor(),
        }
        labels = tf.concat([target, tf.fill([rows, 1], EOS_ID)], 1).to_tensor()
        logits, packed = self.model.packed_logits(inputs, labels)
        nll = token_losses(packed, logits).nll
        return tf.reduce_sum(nll), tf.size(nll)

    def reference_nll(
        self, sentences: Sequence[str], references: Sequence[str]
    ) -> tuple[float, int]:
        """`reference_nll_graph` over whole lists, in batches: (summed NLL, tokens)."""
        total, tokens = 0.0, 0
        size = self.batch_size
        for start in range(0, len(sentences), size):
            nll, count = self.reference_nll_graph(
                tf.constant(sentences[start : start + size], tf.string),
                tf.constant(references[start : start + size], tf.string),
            )
            total, tokens = total + float(nll), tokens + int(count)
        return total, tokens

    def translate_batch(self, sentences: list[str]) -> tuple[np.ndarray, np.ndarray]:
        output = self.translate_text(tf.constant(sentences, tf.string))
        return output["translations"].numpy(), output["scores"].numpy()

    def alignment_batch(self, sentences: list[str]) -> dict[str, np.ndarray]:
        output = self.translate_text(tf.constant(sentences, tf.string))
        keys = ("attention", "source_tokens", "target_tokens")
        return {key: output[key].numpy() for key in keys}
