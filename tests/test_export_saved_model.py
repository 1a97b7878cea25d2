"""SavedModel export: TF Serving layout, signatures, bad input, and a clean-process reload."""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

from keras_nmt.errors import UserError
from keras_nmt.exporting import saved_model
from keras_nmt.exporting.format import (
    SAVED_MODEL_METADATA,
    SAVED_MODEL_OTHER_SIGNATURES,
    SAVED_MODEL_SIGNATURES,
)
from keras_nmt.exporting.saved_model import export_saved_model
from keras_nmt.inference.loading import load
from keras_nmt.inference.saved_model import SavedModelTranslator
from tests.conftest import toy_pairs

SENTENCES = [source for source, _ in toy_pairs()[:12]]
BAD_INPUT = {
    "empty string": [""],
    "whitespace only": [" ", "\t \n"],
    "5,000 words": [" ".join(["one two three four five"] * 1000)],
    "invalid UTF-8": [b"one \xff\xfe two \xc3", b"\x80"],
    "emoji and mixed scripts": ["one 😀 two", "Привет 世界 مرحبا three", "🇩🇪👍🏽"],
}


@pytest.fixture(scope="module")
def loaded(saved_model_export):
    return tf.saved_model.load(str(saved_model_export))


def call(loaded, signature: str, texts) -> dict[str, np.ndarray]:
    outputs = loaded.signatures[signature](text=tf.constant(texts, tf.string))
    return {key: value.numpy() for key, value in outputs.items()}


class StandInArchive:
    """Writes the files of a SavedModel without tracing one: for tests of the layout."""

    def write_out(self, path, **_kwargs):
        (pathlib.Path(path) / "variables").mkdir()
        (pathlib.Path(path) / "saved_model.pb").write_bytes(b"stand-in")
        (pathlib.Path(path) / "variables" / "variables.index").write_bytes(b"stand-in")


def test_layout_is_tf_servings_and_versions_count_up(trained_run, tmp_path, monkeypatch):
    translator = load(trained_run)
    first = export_saved_model(translator, tmp_path / "base", "toy")
    # Numbering versions does not depend on what a version holds: the others are stand-ins.
    monkeypatch.setattr(saved_model, "build_archive", lambda _translator: StandInArchive())
    second = export_saved_model(translator, tmp_path / "base", "toy")
    chosen = export_saved_model(translator, tmp_path / "base", "toy", version=7)
    after_gap = export_saved_model(translator, tmp_path / "base", "toy")
    assert [p.name for p in (first, second, chosen, after_gap)] == ["1", "2", "7", "8"]
    # Nothing but numbered versions in the model base path, and nothing left beside it.
    assert sorted(p.name for p in (tmp_path / "base" / "toy").iterdir()) == ["1", "2", "7", "8"]
    assert [p.name for p in (tmp_path / "base").iterdir()] == ["toy"]
    for version in (first, after_gap):
        assert (version / "saved_model.pb").is_file()
        assert (version / "variables" / "variables.index").is_file()
        info = json.loads((version / SAVED_MODEL_METADATA).read_text("utf-8"))
        assert set(info["signatures"]) == {*SAVED_MODEL_SIGNATURES, *SAVED_MODEL_OTHER_SIGNATURES}
        # Readable by a model server running as another user (mkdtemp makes 0700).
        assert version.stat().st_mode & 0o055 == 0o055 & ~_umask()
    with pytest.raises(UserError, match="already exists"):
        export_saved_model(translator, tmp_path / "base", "toy", version=2)
    with pytest.raises(UserError, match="positive integer"):
        export_saved_model(translator, tmp_path / "base", "toy", version=0)


def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


def test_a_version_appears_only_when_complete(trained_run, tmp_path, monkeypatch):
    translator = load(trained_run)
    base = tmp_path / "base"
    seen = []
    real_rename = os.rename

    def checked_rename(source, target):
        source, target = pathlib.Path(source), pathlib.Path(target)
        seen.append(target)
        # At the moment of the rename the temporary directory is complete, outside the
        # model's base path, and the version does not exist yet.
        assert source.parent == base and source.name.startswith(".")
        assert (source / "saved_model.pb").is_file() and (source / SAVED_MODEL_METADATA).is_file()
        assert not target.exists()
        real_rename(source, target)

    monkeypatch.setattr(saved_model.os, "rename", checked_rename)
    path = export_saved_model(translator, base, "toy")
    assert seen == [path] and path.is_dir()


def test_a_failed_export_leaves_nothing_behind(trained_run, tmp_path, monkeypatch):
    translator = load(trained_run)

    class HalfWritten:
        def write_out(self, path, **_kwargs):
            (pathlib.Path(path) / "saved_model.pb").write_bytes(b"half")
            raise OSError("disk full")

    monkeypatch.setattr(saved_model, "build_archive", lambda _translator: HalfWritten())
    with pytest.raises(OSError, match="disk full"):
        export_saved_model(translator, tmp_path / "base", "toy")
    assert [p.name for p in (tmp_path / "base").iterdir()] == ["toy"]
    assert list((tmp_path / "base" / "toy").iterdir()) == []


CLEAN_PROCESS = textwrap.dedent(
    """
    import json, sys
    import tensorflow as tf
    import tensorflow_text  # noqa: F401
    path, request = sys.argv[1], json.loads(sys.stdin.read())
    model = tf.saved_model.load(path)
    answers = {}
    for name, function in model.signatures.items():
        answers[name] = []
        for batch in request:
            texts = tf.constant(batch, tf.string)
            inputs = {
                "score": {"source": texts, "target": texts},
                "translate_sample": {"text": texts, "seed": tf.constant(1, tf.int64)},
            }.get(name, {"text": texts})
            outputs = function(**inputs)
            answers[name].append({key: value.numpy().tolist() for key, value in outputs.items()})
    loaded = sorted(name for name in sys.modules if name.split(".")[0] in ("keras_nmt", "keras"))
    print(json.dumps({"answers": answers, "modules": loaded}, default=lambda b: b.decode()))
    """
)


def test_export_runs_in_a_clean_process_without_its_run_dir(trained_run, tmp_path):
    run = shutil.copytree(trained_run, tmp_path / "run")
    translator = load(run)
    exported = export_saved_model(translator, tmp_path / "export", "toy")
    moved = tmp_path / "elsewhere" / "toy" / "1"
    moved.parent.mkdir(parents=True)
    shutil.move(exported, moved)
    shutil.rmtree(tmp_path / "export")
    expected = {
        "beam": translator.translate_with_scores(SENTENCES),
        "greedy": translator.with_decoding(beam_size=1).translate_with_scores(SENTENCES),
        "nbest": translator.with_decoding(n_best=5).translate_with_scores(SENTENCES),
    }
    shutil.rmtree(run)

    batches = [SENTENCES[:1], SENTENCES]  # two batch sizes
    result = subprocess.run(
        [sys.executable, "-c", CLEAN_PROCESS, str(moved)],
        input=json.dumps(batches),
        capture_output=True,
        text=True,
        cwd=tmp_path,  # not the repository: keras_nmt is not importable from its source tree
        check=True,
    )
    reply = json.loads(result.stdout.strip().splitlines()[-1])
    assert not any(name.startswith("keras_nmt") for name in reply["modules"])
    answers = reply["answers"]
    assert set(answers) == {*SAVED_MODEL_SIGNATURES, *SAVED_MODEL_OTHER_SIGNATURES}
    for batch, outputs in zip(batches, answers["score"]):
        assert len(outputs["score"]) == len(batch) and len(outputs["target_tokens"]) == len(batch)
    for batch, outputs in zip(batches, answers["translate_sample"]):
        assert len(outputs["translation"]) == len(batch)
    for batch, outputs in zip(batches, answers["serving_default"]):
        assert outputs["translation"] == [expected["beam"][i][0][0] for i in range(len(batch))]
        np.testing.assert_allclose(
            outputs["score"], [expected["beam"][i][0][1] for i in range(len(batch))], rtol=1e-5
        )
    for batch, outputs in zip(batches, answers["translate_greedy"]):
        assert outputs["translation"] == [expected["greedy"][i][0][0] for i in range(len(batch))]
    for batch, outputs in zip(batches, answers["translate_nbest"]):
        assert outputs["translations"] == [
            [text for text, _ in expected["nbest"][i]] for i in range(len(batch))
        ]
        assert np.all(np.diff(outputs["scores"], axis=1) <= 0)  # best first
    for batch, outputs in zip(batches, answers["translate_attention"]):
        assert outputs["translation"] == answers["serving_default"][1]["translation"][: len(batch)]
        attention = np.array(outputs["attention"])
        assert attention.shape[:2] == np.array(outputs["target_tokens"]).shape
        assert attention.shape[::2] == np.array(outputs["source_tokens"]).shape


def test_the_toy_model_translates_through_its_export(loaded):
    targets = [target for _, target in toy_pairs()[:12]]
    translations = [t.decode() for t in call(loaded, "serving_default", SENTENCES)["translation"]]
    # At least half right, so not a stub; the bar leaves room for seeds and rounding.
    assert sum(a == b for a, b in zip(translations, targets)) >= 6


def test_saved_model_cli_lists_the_documented_signatures(saved_model_export):
    command = (
        "import sys, tensorflow_text; from tensorflow.python.tools.saved_model_cli import main; "
        "sys.argv[0] = 'saved_model_cli'; main()"
    )
    shown = subprocess.run(
        [sys.executable, "-c", command, "show", "--dir", str(saved_model_export), "--all"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    blocks = {block.split("']", 1)[0]: block for block in shown.split("signature_def['")[1:]}
    beam = json.loads((saved_model_export / SAVED_MODEL_METADATA).read_text())["decode"]
    expected = {
        "serving_default": {"translation": ("DT_STRING", "(-1)"), "score": ("DT_FLOAT", "(-1)")},
        "translate_greedy": {"translation": ("DT_STRING", "(-1)"), "score": ("DT_FLOAT", "(-1)")},
        "translate_nbest": {
            "translations": ("DT_STRING", f"(-1, {beam['n_best']})"),
            "scores": ("DT_FLOAT", f"(-1, {beam['n_best']})"),
        },
        "translate_attention": {
            "translation": ("DT_STRING", "(-1)"),
            "score": ("DT_FLOAT", "(-1)"),
            "attention": ("DT_FLOAT", "(-1, -1, -1)"),
            "source_tokens": ("DT_STRING", "(-1, -1)"),
            "target_tokens": ("DT_STRING", "(-1, -1)"),
        },
    }
    for name, outputs in expected.items():
        block = blocks[name]
        assert "Method name is: tensorflow/serving/predict" in block
        assert "inputs['text'] tensor_info:\n        dtype: DT_STRING\n        shape: (-1)" in block
        for output, (dtype, shape) in outputs.items():
            assert (
                f"outputs['{output}'] tensor_info:\n        dtype: {dtype}\n        shape: {shape}"
                in block
            )
        assert block.count("outputs['") == len(outputs)


@pytest.mark.parametrize("case", BAD_INPUT)
@pytest.mark.parametrize("signature", list(SAVED_MODEL_SIGNATURES))
def test_bad_input_gets_a_defined_output(loaded, signature, case):
    texts = BAD_INPUT[case]
    outputs = call(loaded, signature, texts)
    for key, value in outputs.items():
        assert value.shape[0] == len(texts), key
    scores = outputs.get("score", outputs.get("scores"))
    assert not np.isnan(scores).any()
    if case in ("empty string", "whitespace only"):
        translations = outputs.get("translation", outputs.get("translations"))
        assert (translations == b"").all()
        assert (np.atleast_2d(scores.T)[0] == 0).all()  # the one (empty) hypothesis


def test_empty_batch(loaded):
    for signature in SAVED_MODEL_SIGNATURES:
        outputs = call(loaded, signature, np.array([], dtype=object))
        assert all(value.shape[0] == 0 for value in outputs.values())
    assert call(loaded, "translate_nbest", [])["translations"].shape == (0, 5)


def test_over_long_input_is_truncated_to_the_documented_limit(loaded, saved_model_export):
    limit = json.loads((saved_model_export / SAVED_MODEL_METADATA).read_text())["max_input_tokens"]
    words = " ".join(["one two three four five"] * 1000)
    outputs = call(loaded, "translate_attention", [words])
    source_tokens = [t for t in outputs["source_tokens"][0] if t]
    assert len(source_tokens) == limit and source_tokens[-1] == b"</s>"
    assert outputs["translation"][0]  # still translated


def test_a_batch_of_1000_sentences(loaded):
    texts = [SENTENCES[i % len(SENTENCES)] for i in range(1000)]
    outputs = call(loaded, "serving_default", texts)
    assert outputs["translation"].shape == (1000,)
    # Batching does not change a sentence's translation.
    alone = call(loaded, "serving_default", SENTENCES)["translation"]
    assert list(outputs["translation"][: len(SENTENCES)]) == list(alone)


def test_translator_load_takes_a_version_or_a_model_base_path(saved_model_export, trained_run):
    in_process = load(trained_run)
    for path in (saved_model_export, saved_model_export.parent):
        translator = load(path)
        assert isinstance(translator, SavedModelTranslator)
        assert translator.path == saved_model_export
        assert translator.translate(SENTENCES) == in_process.translate(SENTENCES)
        greedy = translator.with_decoding(beam_size=1)
        assert greedy.translate(SENTENCES) == in_process.with_decoding(1).translate(SENTENCES)
        nbest = translator.with_decoding(n_best=3).translate_with_scores(SENTENCES[:2])
        assert [len(hypotheses) for hypotheses in nbest] == [3, 3]
    with pytest.raises(UserError, match="beam 5 or greedily"):
        load(saved_model_export).with_decoding(beam_size=3)
    with pytest.raises(UserError, match="at most 5"):
        load(saved_model_export).with_decoding(n_best=6)
