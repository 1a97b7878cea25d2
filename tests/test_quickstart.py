"""The quickstart: a short version in the default suite, the real one behind `slow`."""

import re

import pytest

from keras_nmt.config import TFLITE_QUANTIZATIONS as QUANTIZATIONS
from keras_nmt.evaluation.bleu import evaluate
from keras_nmt.exporting.tflite import export_tflite
from keras_nmt.inference.loading import load
from keras_nmt.quickstart.run import EXAMPLES, quickstart


def test_short_quickstart_writes_splits_trains_and_reports_bleu(tmp_path):
    messages = []
    scores = quickstart(
        tmp_path / "run",
        # A 5-step model decodes every sentence to its length limit: greedily and to 30
        # pieces, the 500 test sentences take seconds (the full quickstart is the slow test).
        [
            "train.epochs=1",
            "train.steps_per_epoch=5",
            "train.tensorboard=false",
            "decode.beam_size=1",
            "decode.max_length=30",
        ],
        log=messages.append,
        export_dir=tmp_path / "export",
    )
    output = "\n".join(messages)
    assert re.search(r"^BLEU = \d+\.\d\d ", output, re.M)
    assert scores.sentences == 500
    for split in ("train", "valid", "test"):
        for lang in ("en", "de"):
            assert (tmp_path / "run" / "data" / f"{split}.{lang}").is_file()
    assert (tmp_path / "run" / "model.weights.h5").is_file()
    assert all(example in output for example in EXAMPLES)
    assert (tmp_path / "export" / "quickstart" / "1" / "saved_model.pb").is_file()
    assert (tmp_path / "run" / "attention.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_full_quickstart_reaches_bleu_90(tmp_path):
    scores = quickstart(tmp_path / "run", export_dir=tmp_path / "export")
    assert scores.bleu >= 90.0
    # Quantized TFLite exports stay within 1 BLEU of the float one on the test split.
    translator = load(tmp_path / "run")
    test = tmp_path / "run" / "data"
    bleu = {}
    for quantize in QUANTIZATIONS:
        path = export_tflite(translator, tmp_path / f"{quantize}.tflite", quantize)
        bleu[quantize] = evaluate(load(path), test / "test.en", test / "test.de").bleu
    assert abs(bleu["none"] - scores.bleu) < 0.01  # same model, same beam search
    assert all(abs(bleu[q] - bleu["none"]) <= 1.0 for q in QUANTIZATIONS), bleu
