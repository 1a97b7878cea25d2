"""The attention encoder-decoder as one Keras model.

- `call({"source", "decoder_input"})`: teacher-forced logits `(batch, T, V)`;
- `packed_logits(inputs, labels)`: the same forward pass with the generator run on the
  non-PAD target positions only (what `train_step` trains on);
- `compile(optimizer, loss=MaskedNLL(label_smoothing))`, then Keras's `fit` and `evaluate`,
  whose `train_step`/`test_step` are the model's own (see `train_step`);
- `initial_decoding_state(source)`: encodes once and returns the decoding state;
- `step(tokens, state)`: one decoder step, `(log_probs, new_state, attention)`, what the
  decoding strategies in `keras_nmt.decoding` call.
"""

from __future__ import annotations

import dataclasses

import keras
import tensorflow as tf
from keras import ops

from keras_nmt.config import ModelConfig
from keras_nmt.layers.bridge import Bridge
from keras_nmt.layers.decoder import Decoder
from keras_nmt.layers.encoder import Encoder
from keras_nmt.models.losses import MaskedNLL, TokenSums, token_losses
from keras_nmt.special_ids import PAD_ID

_DEFAULT = ModelConfig()  # the defaults of `Seq2Seq`'s architecture arguments
# The names of the metrics that hold the running sums behind the logs (`Seq2Seq.metrics`).
_METRIC_NAMES = TokenSums(
    loss="loss_sum", nll="nll_sum", correct="correct_tokens", tokens="target_tokens"
)
_SUM = tf.distribute.ReduceOp.SUM


@keras.saving.register_keras_serializable(package="keras_nmt")
class Seq2Seq(keras.Model):
    """Encoder, bridge and attention decoder.

    Args:
        source_vocab_size, target_vocab_size: vocabulary sizes.
        The other arguments are the fields of `keras_nmt.config.ModelConfig`.

    Call arguments:
        inputs: a dict with `"source"` `(batch, S)` and `"decoder_input"` `(batch, T)`,
            int ids padded with PAD = 0.

    Returns:
        Logits `(batch, T, target_vocab_size)`, float32.

    Training with Keras's loop:

        model.compile(optimizer=keras.optimizers.Adam(1e-3, global_clipnorm=5.0),
                      loss=MaskedNLL(label_smoothing=0.1))  # loss optional: no smoothing
        model.fit(train_batches, validation_data=valid_batches, epochs=10)

    with batches `(inputs, labels)` as `pipeline.make_dataset` makes them. The logs are
    `loss`, `perplexity` and `token_accuracy` (and their `val_` forms): means over every
    non-PAD target token of the epoch so far, or of the evaluated batches.
    """

    def __init__(
        self,
        source_vocab_size: int,
        target_vocab_size: int,
        rnn_type: str = _DEFAULT.rnn_type,
        embedding_dim: int = _DEFAULT.embedding_dim,
        encoder_layers: int = _DEFAULT.encoder_layers,
        encoder_units: int = _DEFAULT.encoder_units,
        bidirectional: bool = _DEFAULT.bidirectional,
        decoder_layers: int = _DEFAULT.decoder_layers,
        decoder_units: int = _DEFAULT.decoder_units,
        attention: str = _DEFAULT.attention,
        attention_units: int | None = _DEFAULT.attention_units,
        input_feeding: bool = _DEFAULT.input_feeding,
        bridge: str = _DEFAULT.bridge,
        dropout: float = _DEFAULT.dropout,
        word_dropout: float = _DEFAULT.word_dropout,
        tie_embeddings: bool = _DEFAULT.tie_embeddings,
        layer_norm: bool = _DEFAULT.layer_norm,
        **kwargs,
    ):
        super().__init__(**kwargs)
        # XLA cannot compile the teacher-forced decoder loop (a TensorArray of unknown size):
        # `compile(jit_compile=...)` stays off, also where "auto" would turn it on (GPUs).
        self.supports_jit = False
        self.source_vocab_size = source_vocab_size
        self.target_vocab_size = target_vocab_size
        self.model_config = config = ModelConfig(
            rnn_type=rnn_type, embedding_dim=embedding_dim, encoder_layers=encoder_layers,
            encoder_units=encoder_units, bidirectional=bidirectional,
            decoder_layers=decoder_layers, decoder_units=decoder_units, attention=attention,
            attention_units=attention_units, input_feeding=input_feeding, bridge=bridge,
            dropout=dropout, word_dropout=word_dropout, tie_embeddings=tie_embeddings,
            layer_norm=layer_norm,
        )  # fmt: skip
        self.encoder = _encoder(source_vocab_size, config)
        self.bridge = Bridge(
            bridge,
            decoder_units,
            decoder_layers=decoder_layers,
            states_per_cell=self.encoder.states_per_cell,
            name="bridge",
        )
        self.decoder = _decoder(target_vocab_size, config)
        # Float64: a float32 count stops being exact past 2^24 tokens.
        self._token_sums = [keras.metrics.Sum(name=name, dtype="float64") for name in _METRIC_NAMES]

    @classmethod
    def from_model_config(
        cls, config: ModelConfig, source_vocab_size: int, target_vocab_size: int
    ) -> Seq2Seq:
        return cls(source_vocab_size, target_vocab_size, **dataclasses.asdict(config))

    def build(self, input_shape=None):
        self.encoder.build((None, None))
        encoder_states_shape = self.encoder.compute_output_shape((None, None))[1]
        self.bridge.build(encoder_states_shape)
        self.decoder.build()
        self.built = True

    def encode(self, source, training=False):
        """Runs the encoder and the bridge.

        Args:
            source: `(batch, S)` int ids.

        Returns:
            `(decoder_state, memory)` as `DecoderCell` expects them.
        """
        outputs, final_states = self.encoder(source, training=training)
        state = self.decoder.cell.initial_state(self.bridge(final_states))
        memory = self.decoder.cell.memory(outputs, ops.not_equal(source, PAD_ID))
        return state, memory

    def call(self, inputs, training=False):
        state, memory = self.encode(inputs["source"], training=training)
        return self.decoder(inputs["decoder_input"], state, memory, training=training)

    def packed_logits(self, inputs, labels, training=False):
        """Teacher forcing with the generator run on the non-PAD label positions only (PAD
        rows are most of the padding cost: the vocabulary projection dominates a step).

        Args:
            inputs: as `call`.
            labels: `(batch, T)` int ids, PAD-padded like `inputs["decoder_input"]`.

        Returns:
            `(logits (N, V) float32, labels (N,))` for the N non-PAD positions.
        """
        state, memory = self.encode(inputs["source"], training=training)
        attentional = self.decoder.attentional_states(
            inputs["decoder_input"], state, memory, training=training
        )  # (batch, T, units)
        real = ops.not_equal(labels, PAD_ID)
        logits = self.decoder.logits(tf.boolean_mask(attentional, real))  # (N, V)
        return logits, tf.boolean_mask(labels, real)

    def token_sums(self, inputs, labels, label_smoothing: float = 0.0, training=False) -> TokenSums:
        """The float32 `TokenSums` over the batch's non-PAD target tokens, the token losses
        with `label_smoothing`.

        Args:
            inputs, labels: as `packed_logits`.
        """
        logits, packed = self.packed_logits(inputs, labels, training=training)
        return TokenSums.of(token_losses(packed, logits, label_smoothing))

    # -- Keras's training loop -------------------------------------------------------------

    def compile(self, optimizer="rmsprop", loss=None, **kwargs):
        """`keras.Model.compile` for this model's `train_step` and `test_step`.

        Args:
            optimizer: any Keras optimizer (or its name), a `LossScaleOptimizer` included;
                its clipping applies to the gradient of the global batch (see `train_step`).
                For gradient accumulation, train on groups of micro-batches
                (`pipeline.group_micro_batches`), which `train_step` weighs by their token
                counts; Keras's `gradient_accumulation_steps` would weigh each micro-batch's
                mean gradient the same (and with R > 1 replicas clip each apart).
            loss: `None` or a `keras_nmt.models.losses.MaskedNLL`, the loss the steps minimise and
                log: `MaskedNLL(label_smoothing)` sets the label smoothing (`None`: none).
                The steps compute its value from the non-PAD positions only (`token_sums`),
                which equals it on the padded logits; `compute_loss` gives the padded one.
            **kwargs: the other arguments of `keras.Model.compile`, except `metrics`,
                `weighted_metrics` and `loss_weights`: the steps log their own metrics.
        """
        if loss is None:
            loss = MaskedNLL()
        if not isinstance(loss, MaskedNLL):
            raise ValueError(
                f"loss: expected None or a keras_nmt.models.losses.MaskedNLL, received {loss!r}"
            )
        for name in ("metrics", "weighted_metrics", "loss_weights"):
            if kwargs.get(name) is not None:
                raise ValueError(
                    f"{name}: not supported (the steps log loss, perplexity and "
                    f"token_accuracy over the target tokens), received {kwargs[name]!r}"
                )
        if not self.built:
            # Without a strategy `fit` does not build the model before tracing `train_step`,
            # whose `packed_logits` needs the variables (it does not go through `__call__`).
            self.build()
        super().compile(optimizer=optimizer, loss=loss, **kwargs)

    def compile_from_config(self, config):
        """Compiles as `compile` from `get_compile_config()`'s dict (what `load_model` calls;
        Keras skips a model whose `compile` is overridden unless this is too)."""
        self.compile(**keras.saving.deserialize_keras_object(config))
        self.optimizer.build(self.trainable_variables)

    @property
    def metrics(self):
        """The running sums behind the logs (`keras.metrics.Sum`, float64), the fields of
        `TokenSums` in order: token loss, NLL, correct predictions and tokens over the non-PAD
        target tokens seen since the last reset. `fit` resets them at every epoch, `evaluate`
        (`fit`'s validation too, once the epoch's logs are taken) before it starts. Each
        replica adds the global batch's sums, so within a replica they are the global sums
        (read across replicas they are R times that; the logs are ratios either way)."""
        return list(self._token_sums)

    # `fit` and `evaluate` call `make_train_function()`/`make_test_function()` and then the
    # function on a batch iterator. Keras 3.15's (TensorFlow backend) reduce the replicas'
    # logs with MEAN, along axis 0 under MultiWorkerMirroredStrategy, which fails on scalar
    # logs (keras-team/keras#20585). The steps' logs are the same in every replica (their
    # sums are all-reduced), so these functions take the first replica's.

    def make_train_function(self, force=False):
        if self.train_function is None or force:
            self.train_function = self._iterator_function(self.train_step)
        return self.train_function

    def make_test_function(self, force=False):
        if self.test_function is None or force:
            self.test_function = self._iterator_function(self.test_step)
        return self.test_function

    def _iterator_function(self, step):
        """`iterator -> logs`: `step` on the iterator's next `steps_per_execution` batches
        (fewer if it runs out), in every replica; the logs of the last. Raises
        `OutOfRangeError` (which ends `fit`'s epoch) if there is no batch at all."""
        strategy = self.distribute_strategy
        repeats = self.steps_per_execution

        def one_step(batch):
            logs = strategy.run(step, args=(batch,))
            return tf.nest.map_structure(lambda v: strategy.experimental_local_results(v)[0], logs)

        def steps(iterator):
            logs = one_step(next(iterator))
            if repeats > 1:
                for _ in tf.range(repeats - 1):
                    batch = iterator.get_next_as_optional()
                    if not batch.has_value():
                        break
                    logs = one_step(batch.get_value())
            return logs

        return steps if self.run_eagerly else tf.function(steps, reduce_retracing=True)

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        """What `fit`, `evaluate` and `train_on_batch` call first under a strategy. Keras
        3.15's builds the model from the first distributed batch, MEAN-reduced across
        replicas, which fails for replicas' batches of different shapes (length-bucketed
        batches). Every variable but the optimizer's exists once `compile` has run (it
        builds the model; the steps' metrics are made in `__init__`)."""
        with self.distribute_strategy.scope():
            if self.optimizer is not None and not self.optimizer.built:
                self.optimizer.build(self.trainable_variables)

    def train_step(self, data):
        """One optimizer step on `data`, `(inputs, labels)`: a batch as `pipeline.make_dataset`
        makes them, or a group of micro-batches from `pipeline.group_micro_batches` (one
        more leading axis), trained as one batch holding them all (gradient accumulation).
        `fit` runs it in every replica of the model's strategy.

        The loss is the compiled `MaskedNLL` as the mean over every non-PAD target token of
        the global batch (all replicas, all micro-batches), whatever the number of replicas
        R and their token counts:
        1. the replicas all-reduce (SUM) their non-PAD label counts: N, the global count;
        2. each replica takes the gradient of `loss_sum / N` (times `optimizer.scale_loss`)
           of each of its micro-batches (`token_sums`: generator on the non-PAD positions
           only, float32 logits) and adds them up: the R replicas' gradients add up to G,
           the gradient of the global mean;
        3. `optimizer.apply`. Keras 3.15's optimizer clips what each replica passes and then
           sums the replicas' values (`BaseOptimizer._backend_apply_gradients` clips,
           `TFOptimizer._backend_update_step` all-reduces), so on one replica its clipping
           applies to G itself. With R > 1 the replicas all-reduce their gradients into G
           first, clip G as the optimizer would, and pass `clip(G) / R`, which the
           optimizer's own clipping leaves unchanged (its norm is at most `clip / R`) and
           which sums back to `clip(G)`: clipping acts on the global gradient, as compiled.
           This costs a second all-reduce of the gradients.

        Returns:
            The logs: `loss`, `perplexity` (exp of the mean NLL), `token_accuracy`, per-token
            means since the metrics were last reset.
        """
        inputs, labels = _unpack(data)
        context = tf.distribute.get_replica_context()
        tokens = context.all_reduce(_SUM, tf.reduce_sum(tf.cast(labels != PAD_ID, tf.float32)))
        tokens = tf.maximum(tokens, 1.0)
        if labels.shape.rank == 2:
            gradients, sums = self._gradients(inputs, labels, tokens)
        else:
            gradients, sums = self._accumulated_gradients(inputs, labels, tokens)
        self.optimizer.apply(self._replica_gradients(gradients), self.trainable_variables)
        return self._logs(_summed_over_replicas(sums))

    def test_step(self, data):
        """`train_step`'s sums without a gradient (`training=False`): the same logs over the
        evaluated batches (`val_loss`... in `fit`)."""
        inputs, labels = _unpack(data)
        sums = self.token_sums(inputs, labels, self.loss.label_smoothing)
        return self._logs(_summed_over_replicas(sums))

    def _gradients(self, inputs, labels, tokens):
        """The gradients of one batch's summed token loss over `tokens`, and its
        `TokenSums` (`token_sums`)."""
        with tf.GradientTape() as tape:
            sums = self.token_sums(inputs, labels, self.loss.label_smoothing, training=True)
            loss = self.optimizer.scale_loss(sums.loss / tokens)
        # Embedding gradients come as IndexedSlices, a row per token occurrence: dense, or
        # Keras's clipping would add up the squares of a repeated token's rows, not of their sum.
        gradients = [tf.convert_to_tensor(g) for g in tape.gradient(loss, self.trainable_variables)]
        return gradients, sums

    def _accumulated_gradients(self, inputs, labels, tokens):
        """`_gradients` summed over a group of micro-batches `(n, batch, length)`, each
        trimmed of the rows and columns that `group_micro_batches` padded it with."""
        gradients = [tf.zeros_like(v) for v in self.trainable_variables]
        sums = TokenSums.zeros()
        for i in tf.range(tf.shape(labels)[0]):
            micro_inputs, micro_labels = _trimmed({k: v[i] for k, v in inputs.items()}, labels[i])
            more_gradients, more_sums = self._gradients(micro_inputs, micro_labels, tokens)
            gradients = [a + b for a, b in zip(gradients, more_gradients)]
            sums = sums.plus(more_sums)
        return gradients, sums

    def _replica_gradients(self, gradients):
        """What this replica passes to `optimizer.apply` (see `train_step`, step 3)."""
        context = tf.distribute.get_replica_context()
        replicas = context.num_replicas_in_sync
        if replicas == 1:
            return gradients
        total = context.all_reduce(_SUM, gradients)
        scale = self.optimizer.scale_loss(1.0)  # the loss scale, 1 without loss scaling
        clipped = _clipped([g / scale for g in total], self.optimizer)
        return [g * (scale / replicas) for g in clipped]

    def _logs(self, totals: TokenSums):
        """Adds the global batch's `totals` to the running sums; returns the logs."""
        for metric, value in zip(self._token_sums, totals):
            metric.update_state(value)
        sums = TokenSums(*(metric.result() for metric in self._token_sums))
        tokens = tf.maximum(sums.tokens, 1.0)
        return {
            "loss": sums.loss / tokens,
            "perplexity": tf.exp(tf.minimum(sums.nll / tokens, 700.0)),
            "token_accuracy": sums.correct / tokens,
        }

    # -- decoding --------------------------------------------------------------------------

    def initial_decoding_state(self, source):
        """The decoding state for `source` `(batch, S)`: one nested dict holding the decoder
        state and the attention memory, every leaf with the batch as its first axis."""
        state, memory = self.encode(source)
        return {"decoder": state, "memory": memory}

    def step(self, tokens, state):
        """One decoding step: `tokens` `(batch,)` -> `(log_probs (batch, V), new_state,
        attention (batch, S))`; `state` as from `initial_decoding_state`."""
        log_probs, decoder_state, attention = self.decoder.step(
            tokens, state["decoder"], state["memory"]
        )
        return log_probs, {"decoder": decoder_state, "memory": state["memory"]}, attention

    def get_config(self):
        return {
            **super().get_config(),
            "source_vocab_size": self.source_vocab_size,
            "target_vocab_size": self.target_vocab_size,
            **dataclasses.asdict(self.model_config),
        }


def _encoder(vocab_size: int, config: ModelConfig) -> Encoder:
    return Encoder(
        vocab_size,
        config.embedding_dim,
        config.encoder_units,
        num_layers=config.encoder_layers,
        rnn_type=config.rnn_type,
        bidirectional=config.bidirectional,
        dropout=config.dropout,
        word_dropout=config.word_dropout,
        layer_norm=config.layer_norm,
        name="encoder",
    )


def _decoder(vocab_size: int, config: ModelConfig) -> Decoder:
    return Decoder(
        vocab_size,
        config.embedding_dim,
        memory_dim=config.encoder_units,
        units=config.decoder_units,
        num_layers=config.decoder_layers,
        rnn_type=config.rnn_type,
        attention=config.attention,
        attention_units=config.attention_units,
        input_feeding=config.input_feeding,
        dropout=config.dropout,
        word_dropout=config.word_dropout,
        tie_embeddings=config.tie_embeddings,
        layer_norm=config.layer_norm,
        name="decoder",
    )


def _summed_over_replicas(sums: TokenSums) -> TokenSums:
    """`sums` added up over the replicas in sync, in one all-reduce."""
    total = tf.distribute.get_replica_context().all_reduce(_SUM, tf.stack(sums))
    return TokenSums(*tf.unstack(total))


def _unpack(data):
    """`(inputs, labels)` from a batch `fit` or `evaluate` passes to a step."""
    inputs, labels, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
    if labels is None or sample_weight is not None:
        raise ValueError(
            "expected batches (inputs, labels) as pipeline.make_dataset makes them, received "
            f"{data!r}"
        )
    return inputs, labels


def _trimmed(inputs, labels):
    """A micro-batch without the all-PAD rows and the all-PAD trailing columns that padding
    it to its group's shape added (every real row has a non-PAD label: its EOS)."""
    rows = tf.reduce_any(labels != PAD_ID, axis=1)
    trimmed = {}
    for key, ids in {**inputs, "labels": labels}.items():
        ids = tf.boolean_mask(ids, rows)
        length = tf.reduce_max(tf.reduce_sum(tf.cast(ids != PAD_ID, tf.int32), axis=1))
        trimmed[key] = ids[:, :length]
    labels = trimmed.pop("labels")
    return trimmed, labels


def _clipped(gradients, optimizer):
    """`gradients` clipped as `optimizer` (or the one a `LossScaleOptimizer` wraps) clips
    what it is given: `clipnorm` per variable, `global_clipnorm` over all, or `clipvalue`.
    Non-finite gradients stay non-finite, for a `LossScaleOptimizer` to skip the step."""
    inner = getattr(optimizer, "inner_optimizer", optimizer)
    if inner.clipnorm:
        return [tf.clip_by_norm(g, inner.clipnorm) for g in gradients]
    if inner.global_clipnorm:
        return tf.clip_by_global_norm(gradients, inner.global_clipnorm)[0]
    if inner.clipvalue:
        value = inner.clipvalue
        return [
            tf.where(tf.math.is_finite(g), tf.clip_by_value(g, -value, value), g) for g in gradients
        ]
    return gradients
