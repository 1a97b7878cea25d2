"""TFLite export: builtins only, same translations as the SavedModel, quantized variants."""

from __future__ import annotations

import numpy as np
import pytest
import sacrebleu
import tensorflow as tf
from ai_edge_litert.interpreter import Interpreter

from keras_nmt.config import TFLITE_QUANTIZATIONS as QUANTIZATIONS
from keras_nmt.errors import UserError
from keras_nmt.exporting.format import TFLITE_CUSTOM_OPS as CUSTOM_OPS
from keras_nmt.exporting.tflite import export_tflite, operator_codes
from keras_nmt.inference.loading import load
from keras_nmt.inference.tflite import TFLiteTranslator
from keras_nmt.inference.translator import Translator
from tests.conftest import toy_pairs

SENTENCES = [source for source, _ in toy_pairs()[:16]]


@pytest.fixture(scope="module")
def tflite_files(trained_run, tmp_path_factory):
    directory = tmp_path_factory.mktemp("tflite")
    translator = load(trained_run)
    return {q: export_tflite(translator, directory / f"toy_{q}.tflite", q) for q in QUANTIZATIONS}


@pytest.fixture(scope="module")
def lite(tflite_files):
    return TFLiteTranslator.load(tflite_files["none"])


@pytest.fixture(scope="module")
def saved_model(saved_model_export):
    return tf.saved_model.load(str(saved_model_export))


def assert_builtins_and_the_sentencepiece_custom_ops(path):
    names = set(operator_codes(path.read_bytes()))
    assert "WHILE" in names and "FULLY_CONNECTED" in names  # the decoder loop is there
    assert not [name for name in names if name.startswith("Flex")]
    custom = {name for name in names if not name.isupper() or ">" in name}
    assert custom == set(CUSTOM_OPS)


def test_only_builtins_and_the_sentencepiece_custom_ops(tflite_files):
    for path in tflite_files.values():
        assert_builtins_and_the_sentencepiece_custom_ops(path)


def test_the_ids_signature_needs_no_custom_op(lite, tflite_files):
    plain = Interpreter(model_path=str(tflite_files["none"]))
    source_ids = [5, 6, 7, 8]
    outputs = plain.get_signature_runner("translate_ids")(
        source_ids=np.array([source_ids], dtype=np.int32)
    )
    target_ids, score = lite.translate_ids(source_ids)
    assert outputs["target_ids"][0].tolist() == target_ids and target_ids
    with pytest.raises(RuntimeError, match="unresolved custom op"):
        plain.get_signature_runner("translate")(text=np.array([b"one two"], dtype=object))


@pytest.mark.parametrize(
    "signature, saved_signature", [("translate", "serving_default"), ("translate_greedy",) * 2]
)
def test_float32_translations_equal_the_saved_models(lite, saved_model, signature, saved_signature):
    runner = lite.interpreter.get_signature_runner(signature)
    expected = saved_model.signatures[saved_signature](text=tf.constant(SENTENCES))
    for i, sentence in enumerate(SENTENCES):
        outputs = runner(text=np.array([sentence.encode()], dtype=object))
        assert outputs["translation"][0] == expected["translation"][i].numpy()
        np.testing.assert_allclose(outputs["score"][0], expected["score"][i].numpy(), atol=1e-4)


def test_ids_signature_equals_in_process_decoding_token_for_token(lite, trained_run):
    translator = load(trained_run)
    for sentence in SENTENCES:
        source_ids = translator.source_tokenizer.tokenize(tf.constant([sentence]))[0].numpy()
        target_ids, score = lite.translate_ids(source_ids.tolist())
        source = tf.constant([[*source_ids, 2]], tf.int32)
        result = translator.decode([source])
        length = int(result.lengths[0, 0])
        assert target_ids == result.tokens[0, 0, :length].numpy().tolist()
        np.testing.assert_allclose(score, result.scores[0, 0].numpy(), atol=1e-4)
        text = translator.target_tokenizer.detokenize(tf.ragged.constant([target_ids]))[0]
        assert text.numpy() == lite.translate_one(sentence)[0]


def test_quantized_models_translate_and_are_smaller(tflite_files):
    """Each quantized file still translates the toy corpus (above 50 BLEU; the bar leaves
    room for seeds and rounding, and a broken export scores near 0). How close a quantized
    model stays to the float one is a property of a real model, not of an 8-sentence toy
    where one sentence is 12 BLEU: the slow quickstart test checks it (within 1 BLEU)."""
    pairs = toy_pairs()
    sources, references = [s for s, _ in pairs], [t for _, t in pairs]
    for quantize, path in tflite_files.items():
        hypotheses = TFLiteTranslator.load(path).translate(sources)
        assert sacrebleu.corpus_bleu(hypotheses, [references]).score > 50, quantize
    sizes = {q: p.stat().st_size for q, p in tflite_files.items()}
    assert sizes["dynamic_range"] < sizes["float16"] < sizes["none"]


@pytest.mark.parametrize("signature", ["translate", "translate_greedy"])
def test_a_scalar_and_a_one_element_vector_translate_alike(lite, signature):
    runner = lite.interpreter.get_signature_runner(signature)
    nothing = runner(text=np.array([b""], dtype=object))["translation"][0]
    for sentence in SENTENCES[:4]:
        text = sentence.encode()
        vector = runner(text=np.array([text], dtype=object))
        # A 0-d bytes array: the one 0-d form LiteRT's Python wrapper copies as the string
        # (see keras_nmt.inference.tflite); an app's 0-d string tensor is the same input.
        scalar = runner(text=np.array(text))
        assert scalar["translation"].shape == (1,) and scalar["score"].shape == (1,)
        assert scalar["translation"][0] == vector["translation"][0] != nothing
        np.testing.assert_array_equal(scalar["score"], vector["score"])
    # TFLiteTranslator hands the interpreter a [1] vector whatever holds the one sentence
    translator = lite.with_decoding(beam_size=1 if signature == "translate_greedy" else None)
    expected = runner(text=np.array([SENTENCES[0].encode()], dtype=object))
    for sentence in (
        SENTENCES[0],
        SENTENCES[0].encode(),
        np.array(SENTENCES[0].encode(), dtype=object),
        np.array(SENTENCES[0]),
        np.array([SENTENCES[0].encode()], dtype=object),
    ):
        translation, score = translator.translate_one(sentence)
        assert translation == expected["translation"][0] and score == expected["score"][0]


@pytest.mark.parametrize("signature", ["translate", "translate_greedy"])
def test_text_of_no_or_several_sentences_is_an_error(lite, signature):
    runner = lite.interpreter.get_signature_runner(signature)
    two = np.array([b"one two", b"three four"], dtype=object)
    with pytest.raises(RuntimeError, match=r"\(RESHAPE\) failed"):
        runner(text=two)
    with pytest.raises(RuntimeError, match=r"\(RESHAPE\) failed"):
        runner(text=np.array([], dtype=object))
    translator = lite.with_decoding(beam_size=1 if signature == "translate_greedy" else None)
    with pytest.raises(ValueError, match=r"one sentence per call.*shape \(2,\)"):
        translator.translate_one(two)
    with pytest.raises(ValueError, match=r"one sentence per call.*shape \(1, 2\)"):
        translator.translate_one([["one two", "three four"]])
    # the interpreter still translates afterwards
    outputs = runner(text=np.array([b"one two"], dtype=object))
    assert outputs["translation"][0] == translator.translate_one("one two")[0]


def test_ids_of_one_sentence_as_a_vector_or_a_row_and_of_two_an_error(lite):
    runner = lite.interpreter.get_signature_runner("translate_ids")
    source_ids = [5, 6, 7, 8]
    row = runner(source_ids=np.array([source_ids], dtype=np.int32))
    vector = runner(source_ids=np.array(source_ids, dtype=np.int32))
    assert row["target_ids"].shape[0] == 1 and row["target_ids"].size > 0
    np.testing.assert_array_equal(vector["target_ids"], row["target_ids"])
    np.testing.assert_array_equal(vector["score"], row["score"])
    assert lite.translate_ids(np.array([source_ids])) == lite.translate_ids(source_ids)
    two = np.array([source_ids, source_ids[::-1]], dtype=np.int32)
    with pytest.raises(RuntimeError, match=r"\(RESHAPE\) failed"):
        runner(source_ids=two)
    with pytest.raises(ValueError, match=r"shape \(S,\) or \(1, S\), got shape \(2, 4\)"):
        lite.translate_ids(two)


BAD_INPUT = {
    "empty": b"",
    "whitespace": b" \t ",
    "5,000 words": " ".join(["one two three four five"] * 1000).encode(),
    "invalid UTF-8": b"one \xff\xfe two \xc3",
    "emoji": "one 😀 two Привет 世界".encode(),
}


@pytest.mark.parametrize("signature", ["translate", "translate_greedy"])
@pytest.mark.parametrize("case", BAD_INPUT)
def test_bad_input_gets_a_defined_output(lite, saved_model, signature, case):
    outputs = lite.interpreter.get_signature_runner(signature)(
        text=np.array([BAD_INPUT[case]], dtype=object)
    )
    assert outputs["translation"].shape == (1,) and np.isfinite(outputs["score"]).all()
    if case in ("empty", "whitespace"):
        assert outputs["translation"][0] == b"" and outputs["score"][0] == 0
    else:  # the same answer as the SavedModel (which truncates the same way)
        name = "serving_default" if signature == "translate" else signature
        expected = saved_model.signatures[name](text=tf.constant([BAD_INPUT[case]]))
        assert outputs["translation"][0] == expected["translation"][0].numpy()


def test_translator_load_and_decoding_choices(tflite_files, trained_run):
    lite = load(tflite_files["none"])
    assert isinstance(lite, TFLiteTranslator)
    in_process = load(trained_run)
    assert lite.translate(SENTENCES) == in_process.translate(SENTENCES)
    greedy = lite.with_decoding(beam_size=1)
    assert greedy.translate(SENTENCES) == in_process.with_decoding(1).translate(SENTENCES)
    with pytest.raises(UserError, match="one hypothesis"):
        lite.with_decoding(n_best=2)
    with pytest.raises(UserError, match="beam 5 or greedily"):
        lite.with_decoding(beam_size=4)
    with pytest.raises(UserError, match="does not sample"):
        lite.with_decoding(sampling_topk=0)


@pytest.mark.slow  # one more conversion; the SavedModel ensemble test covers the default suite
def test_an_exported_ensemble_decodes_as_in_process(trained_run, one_epoch_run, tmp_path):
    """`one_epoch_run` has layer-normalized cells: they convert to builtins too."""
    members = [Translator.load_run_dir(trained_run), Translator.load_run_dir(one_epoch_run.run_dir)]
    ensemble = Translator.ensemble(members)
    path = export_tflite(ensemble, tmp_path / "ensemble.tflite")
    assert_builtins_and_the_sentencepiece_custom_ops(path)
    lite = TFLiteTranslator.load(path)
    assert lite.translate(SENTENCES) == ensemble.translate(SENTENCES)


def test_not_a_keras_nmt_tflite_file(tmp_path):
    path = tmp_path / "other.tflite"
    path.write_bytes(b"not a flatbuffer")
    with pytest.raises(UserError, match="not a keras-nmt TFLite export"):
        load(path)
    with pytest.raises(UserError, match="FILE.tflite"):
        export_tflite(None, tmp_path / "model.bin")
