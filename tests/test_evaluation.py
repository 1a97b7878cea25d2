"""Evaluation: sacreBLEU options and the perplexity of references under the model."""

from __future__ import annotations

import math

import numpy as np
import pytest
import tensorflow as tf

from keras_nmt.data.pipeline import teacher_forcing
from keras_nmt.evaluation.bleu import evaluate, score
from keras_nmt.inference.loading import load
from tests.conftest import toy_pairs, write_pairs


def test_lowercase_and_ter():
    hypotheses = ["The cat sat on the mat .", "A DOG RUNS ."]
    references = ["the cat sat on the mat .", "a dog runs ."]
    cased, lowered = score(hypotheses, references), score(hypotheses, references, lowercase=True)
    assert lowered.bleu == pytest.approx(100.0) and cased.bleu < 70.0
    assert "case:lc" in lowered.bleu_signature and "case:mixed" in cased.bleu_signature
    assert cased.ter is None and "TER" not in str(cased)
    with_ter = score(hypotheses, references, lowercase=True, ter=True)
    assert with_ter.ter == 0.0 and "TER = 0.00" in str(with_ter)


def test_reference_perplexity_equals_teacher_forcing(trained_run):
    translator = load(trained_run)
    pairs = toy_pairs()[:10]
    sources, references = [s for s, _ in pairs], [t for _, t in pairs]
    total, tokens = translator.reference_nll(sources, references)
    expected_total, expected_tokens = 0.0, 0
    for source, reference in pairs:  # one at a time: no padding
        source_ids = translator.encode_text(tf.constant([source]))  # (1, S)
        target = translator.target_tokenizer.tokenize(tf.constant([reference]))[0]  # (T,)
        inputs, labels = teacher_forcing(source_ids, target)
        inputs["decoder_input"] = inputs["decoder_input"][None, :]  # (1, T + 1)
        log_probs = tf.nn.log_softmax(translator.model(inputs)[0]).numpy()
        labels = labels.numpy()
        expected_total -= sum(log_probs[t, label] for t, label in enumerate(labels))
        expected_tokens += len(labels)
    assert tokens == expected_tokens
    np.testing.assert_allclose(total, expected_total, rtol=1e-4)


def test_evaluate_reports_perplexity_for_run_directories_only(
    trained_run, saved_model_export, tmp_path
):
    write_pairs(tmp_path, "test", toy_pairs()[:10])
    source, reference = tmp_path / "test.en", tmp_path / "test.de"
    in_process = evaluate(load(trained_run), source, reference)
    exported = evaluate(load(saved_model_export), source, reference)
    assert in_process.perplexity is not None and 1.0 <= in_process.perplexity < math.e
    assert exported.perplexity is None
    assert exported.bleu == in_process.bleu
