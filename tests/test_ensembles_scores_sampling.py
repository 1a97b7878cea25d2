"""Ensembles, force-decoding scores and sampling through the translators, the CLI and the
SavedModel export (the decoding strategies themselves: tests/test_decoding_strategies.py)."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from keras_nmt.data.tokenizer import Tokenizer, train_sentencepiece
from keras_nmt.errors import UserError
from keras_nmt.exporting.saved_model import export_saved_model
from keras_nmt.inference.loading import load
from keras_nmt.inference.translator import Translator
from tests.conftest import toy_pairs
from tests.test_cli import main

SOURCES = [source for source, _ in toy_pairs()[:8]]


def tensors(translator, sentences):
    return translator.translate_function(tf.constant(sentences, tf.string))


@pytest.fixture(scope="module")
def trained(trained_run):
    return Translator.load_run_dir(trained_run)


@pytest.fixture(scope="module")
def pair(trained, one_epoch_run):
    """The trained toy model and the one-epoch one (same SentencePiece models: trained alike
    on the same corpus), as an ensemble."""
    other = Translator.load_run_dir(one_epoch_run.run_dir)
    return other, Translator.ensemble([trained, other])


def test_an_ensemble_of_one_is_the_model(trained):
    alone = Translator.ensemble([trained])
    a, b = tensors(trained, SOURCES), tensors(alone, SOURCES)
    np.testing.assert_array_equal(a["translations"], b["translations"])
    np.testing.assert_array_equal(a["scores"], b["scores"])


def test_an_ensemble_of_a_model_with_itself_is_the_model(trained):
    twice = Translator.ensemble([trained, trained])
    a, b = tensors(trained, SOURCES), tensors(twice, SOURCES)
    np.testing.assert_array_equal(a["translations"], b["translations"])
    np.testing.assert_allclose(a["scores"], b["scores"], rtol=1e-4, atol=1e-5)


def test_an_ensemble_of_two_models_mixes_their_distributions(trained, pair):
    """Force-decoded, each token's probability under the ensemble is the mean of its
    probabilities under the two members."""
    other, ensemble = pair
    assert len(ensemble.members) == 2
    translations = trained.translate(SOURCES)
    scored = [m.with_decoding(length_penalty=0.0).score(SOURCES, translations)
              for m in (trained, other, ensemble)]  # fmt: skip
    for (_, pieces_a), (_, pieces_b), (mixed, pieces_mixed) in zip(*scored):
        assert [p for p, _ in pieces_a] == [p for p, _ in pieces_mixed]
        mean = (np.exp([lp for _, lp in pieces_a]) + np.exp([lp for _, lp in pieces_b])) / 2
        np.testing.assert_allclose(np.exp([lp for _, lp in pieces_mixed]), mean, rtol=1e-4)
        assert mixed == pytest.approx(sum(lp for _, lp in pieces_mixed), abs=1e-4)
    assert any(abs(m - a) > 1e-3 for (a, _), (m, _) in zip(scored[0], scored[2]))
    assert any(abs(m - b) > 1e-3 for (b, _), (m, _) in zip(scored[1], scored[2]))


def test_an_ensemble_needs_one_target_vocabulary(trained, tmp_path):
    # A SentencePiece model of the source side, standing for another target vocabulary.
    path = train_sentencepiece((s for s, _ in toy_pairs()), tmp_path / "other.model", 40)
    other = Translator(
        trained.model, trained.source_tokenizer, Tokenizer.load(path), trained.config
    )
    other.origin = "runs/other"
    with pytest.raises(UserError, match=r"one target SentencePiece model: those of .*runs/other"):
        Translator.ensemble([trained, other])


def test_scores_equal_the_scores_translate_gives(trained):
    beam = trained.with_decoding(beam_size=4, n_best=3, length_penalty=0.6)
    checked = 0
    for sentence, hypotheses in zip(SOURCES, beam.translate_with_scores(SOURCES)):
        for text, score in hypotheses:
            retokenized = trained.target_tokenizer.tokenize(tf.constant([text]))[0]
            ((scored, pieces),) = beam.score([sentence], [text])
            assert pieces[-1][0] == "</s>" and len(pieces) == len(retokenized) + 1
            # A hypothesis scores as decoded when its text splits into the same pieces.
            if scored == pytest.approx(score, abs=1e-4):
                checked += 1
    assert checked >= len(SOURCES)  # at least the best hypotheses (canonical pieces)
    per_token = [lp for _, lp in beam.score(SOURCES[:1], ["ein"])[0][1]]
    assert len(per_token) >= 2 and all(lp <= 0 for lp in per_token)


def test_scoring_odd_targets_gives_defined_answers(trained):
    targets = ["", " ".join(["Hund"] * 5000), b"\xff\xfe broken".decode("utf-8", "replace")]
    results = trained.score([SOURCES[0]] * 3, targets)
    assert len(results) == 3
    assert results[0][1][0][0] == "</s>" and len(results[0][1]) == 1  # EOS alone
    assert len(results[1][1]) > 5000
    assert all(np.isfinite(score) or score == -np.inf for score, _ in results)
    raw = trained.score_function(tf.constant([SOURCES[0]]), tf.constant([b"\xff\xfe"]))
    assert raw["score"].shape == (1,)
    assert trained.score([], []) == []
    with pytest.raises(UserError, match="as many translations as sentences"):
        trained.score(SOURCES[:2], ["x"])


def test_sampling_repeats_with_its_seed_and_top_1_is_greedy(trained):
    def sample(topk=0, **settings):
        return trained.with_decoding(sampling_topk=topk, **settings)

    first = sample(sampling_seed=3, sampling_temperature=1.5).translate(SOURCES)
    assert sample(sampling_seed=3, sampling_temperature=1.5).translate(SOURCES) == first
    greedy = trained.with_decoding(beam_size=1).translate_with_scores(SOURCES)
    top1 = sample(topk=1, sampling_seed=7).translate_with_scores(SOURCES)
    assert [h[0][0] for h in top1] == [h[0][0] for h in greedy]
    np.testing.assert_allclose([h[0][1] for h in top1], [h[0][1] for h in greedy], rtol=1e-5)


def test_the_export_scores_and_samples_as_in_process(trained, saved_model_export):
    exported = load(saved_model_export)
    texts = trained.translate(SOURCES)
    in_process = [score for score, _ in trained.score(SOURCES, texts)]
    from_export = [score for score, _ in exported.score(SOURCES, texts)]
    np.testing.assert_allclose(from_export, in_process, rtol=1e-4, atol=1e-5)
    sampled = trained.with_decoding(sampling_topk=0, sampling_seed=11)
    exported_sampled = exported.with_decoding(sampling_topk=0, sampling_seed=11)
    assert exported_sampled.translate(SOURCES) == sampled.translate(SOURCES)
    with pytest.raises(UserError, match="this export samples with"):
        exported.with_decoding(sampling_topk=5)


def test_an_exported_ensemble_equals_the_in_process_one(pair, tmp_path):
    _, ensemble = pair
    exported = load(export_saved_model(ensemble, tmp_path, "ensemble"))
    np.testing.assert_array_equal(
        [t for (t,) in [[x] for x in exported.translate(SOURCES)]], ensemble.translate(SOURCES)
    )
    scores = [s for h in exported.translate_with_scores(SOURCES) for _, s in h]
    expected = [s for h in ensemble.translate_with_scores(SOURCES) for _, s in h]
    np.testing.assert_allclose(scores, expected, rtol=1e-4, atol=1e-5)


def test_the_cli_scores_ensembles_and_samples(trained_run, one_epoch_run, tmp_path, capsys):
    source, target = tmp_path / "src.en", tmp_path / "tgt.de"
    source.write_text("\n".join(SOURCES[:3]) + "\n", encoding="utf-8")
    target.write_text("\n".join(t for _, t in toy_pairs()[:3]) + "\n", encoding="utf-8")
    scored = main(["score", "--model", trained_run, "--src", source, "--tgt", target,
                   "--per-token"], capsys)  # fmt: skip
    assert scored.returncode == 0, scored.stderr
    lines = scored.stdout.splitlines()
    assert len(lines) == 3 and all(" ||| " in line and "</s>:" in line for line in lines)
    expected = Translator.load_run_dir(trained_run).score(
        SOURCES[:3], [t for _, t in toy_pairs()[:3]]
    )
    assert [float(line.split(" ||| ")[0]) for line in lines] == pytest.approx(
        [s for s, _ in expected], abs=1e-4
    )
    both = ["--model", trained_run, "--model", one_epoch_run.run_dir]
    ensemble = main(["translate", *both, "--input", source], capsys)
    assert ensemble.returncode == 0 and len(ensemble.stdout.splitlines()) == 3
    greedy = main(["translate", "--model", trained_run, "--beam-size", "1", "--input", source],
                  capsys)  # fmt: skip
    top1 = main(["translate", "--model", trained_run, "--sampling-topk", "1", "--seed", "4",
                 "--input", source], capsys)  # fmt: skip
    assert top1.stdout == greedy.stdout
    bad = main(["translate", "--model", trained_run, "--seed", "4", "--input", source], capsys)
    assert bad.returncode == 2 and "give --sampling-topk too" in bad.stderr
