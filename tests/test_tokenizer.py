import io

import pytest
import sentencepiece
import tensorflow as tf

from keras_nmt.data.tokenizer import Tokenizer, train_sentencepiece
from keras_nmt.errors import UserError
from keras_nmt.special_ids import BOS_ID, EOS_ID, PAD_ID, UNK_ID


def test_special_ids_and_round_trip(sp_models):
    tokenizer = Tokenizer.load(sp_models[0])
    assert tokenizer.pieces[PAD_ID] == "<pad>"
    assert tokenizer.pieces[BOS_ID] == "<s>"
    assert tokenizer.pieces[EOS_ID] == "</s>"
    assert tokenizer.pieces[UNK_ID] == "<unk>"
    text = tf.constant(["one two three", "eight", ""])
    ids = tokenizer.tokenize(text)
    assert ids.dtype == tf.int32
    assert ids.row_lengths().numpy()[2] == 0
    assert not tf.reduce_any(ids.flat_values < 4)  # no specials in ordinary text
    assert tokenizer.detokenize(ids).numpy().tolist() == [b"one two three", b"eight", b""]


def test_bad_input_does_not_crash(sp_models):
    tokenizer = Tokenizer.load(sp_models[0])
    ids = tokenizer.tokenize(tf.constant([b"\xff\xfe broken", "emoji \U0001f600 \u4e2d"]))
    assert ids.nrows() == 2
    assert UNK_ID in ids.flat_values.numpy()
    assert tokenizer.tokenize(tf.constant([], tf.string)).nrows() == 0


def test_vocab_size_is_an_upper_bound_for_tiny_corpora(tmp_path):
    path = train_sentencepiece(["a b c", "a b"], tmp_path / "tiny.model", vocab_size=1000)
    assert Tokenizer.load(path).vocab_size < 1000


def test_wrong_special_ids_are_rejected(tmp_path):
    model = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(["a b c d e f"] * 10),
        model_writer=model,
        vocab_size=10,
        hard_vocab_limit=False,
        minloglevel=2,
    )
    with pytest.raises(UserError, match="expected special ids pad=0"):
        Tokenizer(model.getvalue())
    with pytest.raises(UserError, match="SentencePiece model not found"):
        Tokenizer.load(tmp_path / "missing.model")
