"""`Translator`: a trained model in process, raw text in, translations out, with tokenization
and decoding in one graph.

`Translator.translate_tensors` translates a string batch with TensorFlow ops alone, to be
traced: tokenize, truncate to `export.max_input_tokens` (EOS included), append EOS, encode
once, decode, drop everything from EOS on, detokenize. `Translator.translate_function` is
that as one `tf.function` over a batch of any size; each Translator traces it once (its
decoding settings are constants of the graph), and the SavedModel export serves it. The
TFLite export traces `translate_tensors` for a batch of one.

It is the `TextTranslator` of a run directory (`Translator.load_run_dir`), or of several
(`Translator.ensemble`): the members' step functions decode as one
(`decoding.ensemble_step`), each member reading the source with its own SentencePiece model,
all sharing the target one. With `decode.sampling_topk` set, it samples instead of searching
(`decoding.sampling`). `score_function` gives the score `translate` would give a given
translation (force decoding, `decoding.force_decode`).
"""

from __future__ import annotations

import pathlib
from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from keras_nmt.config import Config
from keras_nmt.data.pipeline import end_with_eos, teacher_forcing
from keras_nmt.data.tokenizer import Tokenizer
from keras_nmt.decoding import (
    Sampling,
    ensemble_step,
    forbid_tokens,
    force_decode,
    normalised_score,
    search,
)
from keras_nmt.errors import UserError
from keras_nmt.inference.text_translator import TextTranslator, pieces_and_log_probs
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
    """A trained model and its two tokenizers (and more models, for an ensemble).

    Args:
        model: a built `Seq2Seq` with its weights.
        source_tokenizer, target_tokenizer: the run's tokenizers.
        config: the run's configuration (its `decode` and `export` sections are used).
        others: further `(model, source_tokenizer)` pairs decoding with `model` as an
            ensemble, over `target_tokenizer`'s vocabulary (see `ensemble`).
    """

    def __init__(
        self,
        model: Seq2Seq,
        source_tokenizer: Tokenizer,
        target_tokenizer: Tokenizer,
        config: Config,
        others: Sequence[tuple[Seq2Seq, Tokenizer]] = (),
    ):
        super().__init__(name="translator")
        self.model = model
        self.source_tokenizer = source_tokenizer
        self.target_tokenizer = target_tokenizer
        self.config = config
        self.members = ((model, source_tokenizer), *others)
        self.origin = "a model in memory"  # where it was loaded from, for messages

    @classmethod
    def ensemble(cls, translators: Sequence[Translator]) -> Translator:
        """One translator decoding with the mean of the members' probabilities
        (`decoding.ensemble_step`), with the first one's configuration. The members must
        share the target SentencePiece model; each reads the source with its own."""
        first, *rest = translators
        for other in rest:
            if other.target_tokenizer.digest != first.target_tokenizer.digest:
                raise UserError(
                    "an ensemble needs one target SentencePiece model: those of "
                    f"{first.origin} and {other.origin} differ"
                )
        others = [member for other in rest for member in other.members]
        return cls(
            first.model, first.source_tokenizer, first.target_tokenizer, first.config, others
        )

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
        translator = cls(model, source_tokenizer, target_tokenizer, config)
        translator.origin = str(run.path)
        return translator

    def encode_text(self, text: tf.Tensor) -> tf.Tensor:
        """Strings `(batch,)` -> padded source ids `(batch, S)`, each row truncated and ended
        with EOS; an empty or whitespace-only string becomes `[EOS]`."""
        return self._encode(text, self.source_tokenizer)

    def _encode(self, text: tf.Tensor, tokenizer: Tokenizer) -> tf.Tensor:
        max_tokens = self.config.export.max_input_tokens
        ids = tokenizer.tokenize(text)
        if text.shape[0] == 1:
            # One sentence: no ragged ops (they are not TFLite builtins).
            return end_with_eos(ids.flat_values, max_tokens)[None, :]
        return end_with_eos(ids, max_tokens).to_tensor()

    def pieces(self, ids: tf.Tensor, tokenizer: Tokenizer) -> tf.Tensor:
        """Ids `(batch, L)` -> their SentencePiece pieces `(batch, L)`, "" for PAD."""
        table = tf.constant(tokenizer.pieces, tf.string)
        return tf.where(ids == PAD_ID, "", tf.gather(table, ids))

    def with_decoding(
        self,
        beam_size: int | None = None,
        n_best: int | None = None,
        length_penalty: float | None = None,
        sampling_topk: int | None = None,
        sampling_temperature: float | None = None,
        sampling_seed: int | None = None,
    ) -> Translator:
        """The same model with other decoding settings (validated like the config)."""
        settings = dict(
            beam_size=beam_size,
            n_best=n_best,
            length_penalty=length_penalty,
            sampling_topk=sampling_topk,
            sampling_temperature=sampling_temperature,
            sampling_seed=sampling_seed,
        )
        changed = {key: value for key, value in settings.items() if value is not None}
        return self.with_config(self.config.with_section("decode", **changed))

    def with_config(self, config: Config) -> Translator:
        """The same models and tokenizers with `config`'s `decode` and `export` sections (its
        `model` section must be the one the model was built with)."""
        translator = Translator(
            self.model, self.source_tokenizer, self.target_tokenizer, config, self.members[1:]
        )
        translator.origin = self.origin
        return translator

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def translate_function(self, text):
        """`translate_tensors` as one `tf.function` over a batch of any size."""
        return self.translate_tensors(text)

    def member_sources(self, text: tf.Tensor, first: tf.Tensor) -> list[tf.Tensor]:
        """Each member's source ids for `text` (`encode_text` with its own tokenizer); `first`
        is the first member's, already encoded."""
        sources = [first]
        for _, tokenizer in self.members[1:]:
            same = tokenizer.digest == self.source_tokenizer.digest
            sources.append(first if same else self._encode(text, tokenizer))
        return sources

    def step_and_state(self, sources: Sequence[tf.Tensor]):
        """The decoding step (the members' ensemble, PAD and BOS forbidden) and its initial
        state for the members' `sources`."""
        states = [model.initial_decoding_state(s) for (model, _), s in zip(self.members, sources)]
        steps = [model.step for model, _ in self.members]
        state = states[0] if len(states) == 1 else tuple(states)
        return forbid_tokens(ensemble_step(steps), [PAD_ID, BOS_ID]), state

    def decode(self, sources: Sequence[tf.Tensor], sampling_seed=None):
        """The members' source ids (each `(batch, S)`, ended with EOS, then PAD) -> a
        `BeamResult` of the configured decoding (sampling when `decode.sampling_topk` is set,
        with `sampling_seed`, a scalar tensor, in place of the configured seed when given); a
        source of EOS alone decodes to nothing. To be traced."""
        decode = self.config.decode
        source_lengths = tf.reduce_sum(tf.cast(sources[0] > 0, tf.int32), axis=1)
        max_lengths = tf.where(source_lengths > 1, max_decode_lengths(source_lengths, decode), 0)
        step, state = self.step_and_state(sources)
        start = tf.fill([tf.shape(sources[0])[0]], BOS_ID)
        sampling = None
        if decode.sampling_topk is not None or sampling_seed is not None:
            seed = decode.sampling_seed if sampling_seed is None else sampling_seed
            sampling = Sampling(decode.sampling_topk or 0, decode.sampling_temperature, seed)
        beam = 1 if sampling else decode.beam_size
        n_best = 1 if sampling else decode.n_best
        return search(
            step, start, state, EOS_ID, max_lengths, beam, decode.length_penalty, n_best,
            sampling,
        )  # fmt: skip

    @tf.function(
        input_signature=[tf.TensorSpec([None], tf.string), tf.TensorSpec([None], tf.string)]
    )
    def score_function(self, text, target):
        """The score `translate` would give the translation `target` `(batch,)` of `text`
        `(batch,)`: `log P(target + EOS | text) / lp(|target| + 1)` with the configured length
        penalty, by force decoding with the same step (ensemble, forbidden tokens) as
        decoding.

        Returns:
            A dict: `score` `(batch,)` float32; `token_log_probs` `(batch, T)` float32, each
            target piece's log-probability, then EOS's, then 0; `target_tokens` `(batch, T)`
            the pieces ("</s>" for EOS, "" pads).
        """
        count = tf.shape(text)[0]
        # The Keras LSTM fails on an empty batch: score one empty pair instead, then drop it.
        text = tf.cond(count > 0, lambda: text, lambda: tf.constant([""]))
        target = tf.cond(count > 0, lambda: target, lambda: tf.constant([""]))
        first = self.encode_text(text)
        targets = end_with_eos(self.target_tokenizer.tokenize(target), None).to_tensor()
        step, state = self.step_and_state(self.member_sources(text, first))
        start = tf.fill([tf.shape(first)[0]], BOS_ID)
        token_log_probs = force_decode(step, start, state, targets)
        lengths = tf.reduce_sum(tf.cast(targets != PAD_ID, tf.int32), axis=1)
        score = normalised_score(
            tf.reduce_sum(token_log_probs, axis=1), lengths, self.config.decode.length_penalty
        )
        outputs = {
            "score": score,
            "token_log_probs": token_log_probs,
            "target_tokens": self.pieces(targets, self.target_tokenizer),
        }
        return {key: value[:count] for key, value in outputs.items()}

    def translate_ids_tensors(self, source_ids):
        """One sentence's SentencePiece ids `(1, S)` (no EOS; truncated like text) -> a dict:
        `target_ids` `(1, T)` int32, the best hypothesis without EOS, and `score` `(1,)`. For
        apps that tokenize themselves; to be traced."""
        if len(self.members) > 1 and any(
            tokenizer.digest != self.source_tokenizer.digest for _, tokenizer in self.members
        ):
            raise UserError("translate_ids: the ensemble's members tokenize the source apart")
        source = end_with_eos(source_ids[0], self.config.export.max_input_tokens)[None, :]
        result = self.decode([source] * len(self.members))
        return {
            "target_ids": result.tokens[:, 0, : result.lengths[0, 0]],
            "score": result.scores[:, 0],
        }

    def translate_tensors(self, text, sampling_seed=None):
        """Translates `text` `(batch,)` with the configured decoding (`config.decode`; a
        `sampling_seed` tensor samples, see `decode`); to be traced. With a static batch size
        (e.g. 1 for TFLite) every shape stays static.

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
        result = self.decode(self.member_sources(text, source), sampling_seed)
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
    def reference_nll_function(self, text, reference):
        """The summed NLL of `reference` `(batch,)` given `text` `(batch,)` under the model
        (teacher forcing, EOS included) and the number of reference tokens."""
        inputs, labels = teacher_forcing(
            self.encode_text(text), self.target_tokenizer.tokenize(reference)
        )
        inputs["decoder_input"] = inputs["decoder_input"].to_tensor()  # (batch, T)
        logits, packed = self.model.packed_logits(inputs, labels.to_tensor())
        nll = token_losses(packed, logits).nll
        return tf.reduce_sum(nll), tf.size(nll)

    def reference_nll(
        self, sentences: Sequence[str], references: Sequence[str]
    ) -> tuple[float, int]:
        """`reference_nll_function` over whole lists, in batches: (summed NLL, tokens)."""
        total, tokens = 0.0, 0
        size = self.batch_size
        for start in range(0, len(sentences), size):
            nll, count = self.reference_nll_function(
                tf.constant(sentences[start : start + size], tf.string),
                tf.constant(references[start : start + size], tf.string),
            )
            total, tokens = total + float(nll), tokens + int(count)
        return total, tokens

    def score_batch(
        self, sentences: list[str], translations: list[str]
    ) -> tuple[np.ndarray, list[list[tuple[str, float]]]]:
        output = self.score_function(
            tf.constant(sentences, tf.string), tf.constant(translations, tf.string)
        )
        return output["score"].numpy(), pieces_and_log_probs(output)

    def translate_batch(self, sentences: list[str]) -> tuple[np.ndarray, np.ndarray]:
        output = self.translate_function(tf.constant(sentences, tf.string))
        return output["translations"].numpy(), output["scores"].numpy()

    def alignment_batch(self, sentences: list[str]) -> dict[str, np.ndarray]:
        output = self.translate_function(tf.constant(sentences, tf.string))
        keys = ("attention", "source_tokens", "target_tokens")
        return {key: output[key].numpy() for key in keys}
